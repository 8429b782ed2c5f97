//! A configuration file's TOML read into its structure with every problem the operator can
//! fix in one go: all syntax errors at once, else every misspelt key (each file's structure
//! refuses unknown keys) and the first other error (a wrong type, an unknown value), in the
//! file's order, each at its place. The entry an error names is taken out and the rest read
//! again, so one mistake does not hide a misspelt key after it; only the first error of
//! another kind is reported, as later ones may follow from taking it out.

use serde::de::DeserializeOwned;
use toml::de::{DeArray, DeTable, DeValue, Deserializer, Error};

/// Entries taken out of one file at most (then its reading stops).
const MAX_TAKEN_OUT: usize = 32;

/// `text` as `T`, or every error found (never empty).
pub(super) fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Error>> {
    let (mut root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax);
    }
    let mut errs: Vec<Error> = Vec::new();
    let mut other = false;
    for _ in 0..=MAX_TAKEN_OUT {
        let e = match T::deserialize(Deserializer::from(root.clone())) {
            Ok(v) if errs.is_empty() => return Ok(v),
            Ok(_) => break,
            Err(e) => e,
        };
        let span = e.span();
        // A field missing once something was taken out may be that very key, misspelt:
        // the misspelling is reported, not its echo.
        let echo = !errs.is_empty() && e.message().starts_with("missing field");
        if e.message().starts_with("unknown field") {
            errs.push(e);
        } else if !other && !echo {
            other = true;
            errs.push(e);
        }
        // (A missing field names no entry: nothing to take out, the reading ends.)
        if !span.is_some_and(|s| take_out(root.get_mut(), &s)) {
            break;
        }
    }
    errs.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    Err(errs)
}

/// A TOML syntax or type error in `text` (a `T`), at its place in the file.
pub(super) fn toml_error<T: DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
    e: &Error,
) -> super::ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    super::ConfigError::at(path, text, offset, message::<T>(text, e))
}

/// What to say of `e`, an error in `text` (a `T`): its message, and for a key unknown
/// under a `[section]` that the file takes above its sections, that it was read as the
/// section's (put after a section, as an operator appends one, "unknown field" alone
/// names a key the file does take).
pub(super) fn message<T: DeserializeOwned>(text: &str, e: &Error) -> String {
    let said = e.message().trim();
    let Some(span) = e.span().filter(|_| said.starts_with("unknown field")) else {
        return said.to_string();
    };
    let key = said.split('`').nth(1).unwrap_or_default();
    let bare = !key.is_empty()
        && (key.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    // Known at the top when a file of that key alone is refused for anything but it.
    let top_level = bare
        && toml::from_str::<T>(&format!("{key} = 0"))
            .map_or_else(|e| !e.message().starts_with("unknown field"), |_| true);
    if !top_level {
        return said.to_string();
    }
    let before = text.get(..span.start).unwrap_or_default();
    // The last table header above it, as written (its comment aside).
    let header = (before.lines().rev())
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .find(|l| l.starts_with('[') && l.ends_with(']'));
    match header {
        Some(h) => format!(
            "{said} (read as a key of {h}: a key of the file's own goes above its first \
             [section])"
        ),
        None => said.to_string(),
    }
}

/// Take what is at `span` out of `table`: an element of an array (a table of an array of
/// tables, whose first shares the array's span, so the elements are looked at first), an
/// entry within a table inside, or an entry whose key or value it is. False when there is
/// none.
fn take_out(table: &mut DeTable<'_>, span: &std::ops::Range<usize>) -> bool {
    let inside = table.iter_mut().any(|(_, v)| match v.get_mut() {
        DeValue::Table(t) => take_out(t, span),
        DeValue::Array(items) => {
            if let Some(i) = items.iter().position(|i| i.span() == *span) {
                // (The array type has no remove: rebuilt without it.)
                let mut kept = DeArray::new();
                for (j, item) in items.iter().enumerate() {
                    if j != i {
                        kept.push(item.clone());
                    }
                }
                *items = kept;
                return true;
            }
            items.iter_mut().any(|i| match i.get_mut() {
                DeValue::Table(t) => take_out(t, span),
                _ => false,
            })
        }
        _ => false,
    });
    if inside {
        return true;
    }
    let named = table
        .iter()
        .find(|(k, v)| k.span() == *span || v.span() == *span)
        .map(|(k, _)| k.clone());
    named.is_some_and(|key| table.remove(&key).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        name: String,
        #[serde(default)]
        media: Media,
        #[serde(default)]
        routes: Vec<Route>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Media {
        anchor: Option<bool>,
        ptime: Option<u16>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Route {
        to: String,
    }

    /// Whether `got` has an error on `line` whose message starts with `start`.
    fn said(got: &[(usize, String)], line: usize, start: &str) -> bool {
        got.iter().any(|(l, m)| *l == line && m.starts_with(start))
    }

    /// Each error's line (1-based) and the start of its message.
    fn lines(text: &str, errs: &[Error]) -> Vec<(usize, String)> {
        errs.iter()
            .map(|e| {
                let at = e.span().map_or(0, |s| s.start);
                let line = text[..at].matches('\n').count() + 1;
                let msg = e.message().chars().take(20).collect();
                (line, msg)
            })
            .collect()
    }

    #[test]
    fn every_misspelt_key_is_reported_at_once_then_the_first_other_error() {
        let text = "name = \"a\"\nnmae = \"b\"\n[media]\nancor = true\nptime = \"20\"\n\
                    [[routes]]\nto = \"x\"\ntoo = \"y\"\n";
        let errs = from_toml::<File>(text).unwrap_err();
        let got = lines(text, &errs);
        let unknown: Vec<usize> = got
            .iter()
            .filter(|(_, m)| m.starts_with("unknown field"))
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(unknown.len(), 3, "{got:?}");
        assert!(unknown.contains(&2) && unknown.contains(&4) && unknown.contains(&8));
        // The wrong type is reported in its place among them.
        assert_eq!(got[2].0, 5, "{got:?}");
        assert!(got[2].1.starts_with("invalid type"), "{got:?}");
        assert_eq!(got.len(), 4);
        // Of errors of other kinds, the first only.
        let text = "name = 1\n[media]\nptime = \"20\"\nanchr = 1\n";
        let got = lines(text, &from_toml::<File>(text).unwrap_err());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(said(&got, 4, "unknown field"), "{got:?}");
    }

    /// A key of the file's own put after a section (as an operator appends one) is said to
    /// have been read as that section's; a key unknown anywhere is just unknown. Before,
    /// the message said only "unknown field", naming a key the file does take.
    #[test]
    fn a_files_own_key_under_a_section_is_said_to_be_read_as_that_sections() {
        let text = "name = \"a\"\nnmae = 1\n[media]  # the relay\nancor = true\nname = \"b\"\n";
        let said: Vec<String> = (from_toml::<File>(text).unwrap_err().iter())
            .map(|e| message::<File>(text, e))
            .collect();
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(!said[0].contains("read as a key of"), "{}", said[0]);
        assert!(!said[1].contains("read as a key of"), "{}", said[1]);
        assert!(
            said[2].starts_with("unknown field `name`")
                && said[2]
                    .contains("(read as a key of [media]: a key of the file's own goes above"),
            "{}",
            said[2]
        );
    }

    /// A mistake inside an array takes out that element only: the first table of an array
    /// of tables shares the array's span, and one wrong element of a list is no reason to
    /// stop before a misspelt key further on.
    #[test]
    fn a_mistake_in_an_array_hides_nothing_after_it() {
        let text = "name = \"a\"\n[[routes]]\nfrom = 1\n[[routes]]\nto = \"b\"\ntoo = \"c\"\n";
        // The first route's `to` missing (once its misspelt `from` is taken out) names the
        // first table, whose span is the array's: only that table goes, and the second
        // route's misspelt key is found too.
        let got = lines(text, &from_toml::<File>(text).unwrap_err());
        assert!(said(&got, 3, "unknown field"), "{got:?}");
        assert!(said(&got, 6, "unknown field"), "{got:?}");

        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Listed {
            nets: Vec<String>,
            name: Option<String>,
            zone: Option<String>,
        }
        let text = "nets = [\"10.0.0.1/32\", 5]\nnmae = \"x\"\nzone = \"y\"\n";
        let got = lines(text, &from_toml::<Listed>(text).unwrap_err());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(said(&got, 1, "invalid type"), "{got:?}");
        assert!(said(&got, 2, "unknown field"), "{got:?}");
    }

    #[test]
    fn every_syntax_error_is_reported_at_once() {
        let text = "name = \"a\nother = = 1\n[media\nanchor = true\n";
        let errs = from_toml::<File>(text).unwrap_err();
        assert!(errs.len() >= 2, "{:?}", lines(text, &errs));
    }

    #[test]
    fn a_good_file_reads_and_a_bad_one_never_yields_nothing() {
        let ok = from_toml::<File>("name = \"a\"\n[media]\nptime = 20\n").unwrap();
        assert_eq!(ok.media.ptime, Some(20));
        // A missing field is no key to take out: one error.
        let errs = from_toml::<File>("[media]\nptime = 20\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        // One missing because it is misspelt: the misspelling alone.
        let text = "nmae = \"a\"\n";
        let got = lines(text, &from_toml::<File>(text).unwrap_err());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].1.starts_with("unknown field"), "{got:?}");
        // Misspelt keys only: reported, and the structure never handed out with them gone.
        let errs = from_toml::<File>("name = \"a\"\nnam = 1\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        // More misspelt keys than are taken out: stops at the cap.
        let many: String = (0..40).map(|i| format!("k{i} = 1\n")).collect();
        let errs = from_toml::<File>(&format!("name = \"a\"\n{many}")).unwrap_err();
        assert_eq!(errs.len(), MAX_TAKEN_OUT + 1);
    }
}
