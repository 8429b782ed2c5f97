use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration problem, located as `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    /// An error at a byte offset of `text` (the file's contents).
    pub fn at(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset);
        ConfigError {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error at a place found when the file was read ([`Place::of`]).
    pub fn placed(file: &Path, place: Place, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: place.line,
            col: place.col,
            message: message.into(),
        }
    }

    /// An error about the file as a whole (unreadable, missing).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A line and column in a file, kept for a check made after its text is gone (one across
/// files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub line: usize,
    pub col: usize,
}

impl Place {
    /// The place of byte `offset` of `text`.
    pub fn of(text: &str, offset: usize) -> Place {
        let (line, col) = line_col(text, offset);
        Place { line, col }
    }

    /// The places of many offsets of `text`, in one walk when they come in order (a
    /// generated `match` of 50,000 addresses on one line: one [`Place::of`] each rescans
    /// the file from its start, some 25 GB read for a 1 MiB file).
    pub fn of_each(text: &str, offsets: impl IntoIterator<Item = usize>) -> Vec<Place> {
        let (mut pos, mut at) = (0, Place { line: 1, col: 1 });
        offsets
            .into_iter()
            .map(|offset| {
                let offset = offset.min(text.len());
                if offset < pos {
                    (pos, at) = (0, Place { line: 1, col: 1 });
                }
                for c in text.get(pos..offset).unwrap_or("").chars() {
                    if c == '\n' {
                        at = Place {
                            line: at.line + 1,
                            col: 1,
                        };
                    } else {
                        at.col += 1;
                    }
                }
                // Not on a character's boundary: from the start, as `of` reads it.
                if text.get(pos..offset).is_none() {
                    at = Place::of(text, offset);
                }
                pos = offset;
                at
            })
            .collect()
    }
}

/// Every problem found in one load; a load either succeeds whole or reports all of these.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// How many are errors (the warnings found beside them, which follow them, aside).
    pub fn errors(&self) -> usize {
        (self.0.iter())
            .filter(|e| !e.message.starts_with("warning:"))
            .count()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The choice a key's string names, from `choices` (its spelling and its value); anything
/// else is reported at the string, as `{key} "x" must be "a", "b" or "c"`, and gives None.
pub(super) fn one_of<T: Copy>(
    s: &toml::Spanned<String>,
    key: &str,
    choices: &[(&str, T)],
    (path, text): (&Path, &str),
    errs: &mut Vec<ConfigError>,
) -> Option<T> {
    let given = s.get_ref().as_str();
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == given) {
        return Some(*v);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    let list = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    errs.push(ConfigError::at(
        path,
        text,
        s.span().start,
        format!("{key} {given:?} must be {list}"),
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_line_and_column() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }

    /// Many offsets in one walk give what each would alone: in order, out of order, past
    /// the end, after multi-byte characters, inside one.
    #[test]
    fn places_of_many_offsets_match_one_by_one() {
        let t = "a = [\"é\", \"x\"]\nbb = \"ü\"\n\nc = 3";
        let offsets = [0, 3, 6, 8, 9, 17, 22, 12, 40, 7];
        let each = Place::of_each(t, offsets);
        let one: Vec<Place> = offsets.iter().map(|&o| Place::of(t, o)).collect();
        assert_eq!(each, one);
    }
}
