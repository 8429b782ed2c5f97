//! Where the profiles come from: the profiles folder (which of its files are profiles, and
//! their text) or texts given in memory.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Where the profiles come from.
pub(in crate::config) enum ProfileSource<'a> {
    /// The `profiles` folder named in gateway.toml: every `*.toml` in it.
    Folder,
    /// Given in memory: (the path errors name, the text).
    Texts(&'a [(PathBuf, String)]),
}

impl ProfileSource<'_> {
    /// Each profile's path and text (None: unreadable, reported), the folder's being `dir`;
    /// `Err` with why the folder itself cannot be read.
    pub(in crate::config) fn read(
        &self,
        dir: &Path,
        errs: &mut Vec<ConfigError>,
        warns: &mut Vec<ConfigError>,
    ) -> std::io::Result<Vec<(PathBuf, Option<String>)>> {
        match self {
            ProfileSource::Folder => read_profiles_folder(dir, errs, warns),
            ProfileSource::Texts(list) => Ok((list.iter())
                .map(|(p, t)| (p.clone(), Some(t.clone())))
                .collect()),
        }
    }
}

/// Every `*.toml` of the profiles folder with its text (None: unreadable, reported), by
/// name; `Err` with why the folder itself cannot be read.
fn read_profiles_folder(
    dir: &Path,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Result<Vec<(PathBuf, Option<String>)>, std::io::Error> {
    // An entry that cannot be read (EIO, a stale NFS handle) fails the whole folder: left
    // out, its profile would vanish from routing, and a reload would be applied without it.
    let entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    // Hidden files are not profiles: an editor's lock (`.#carrier-a.toml`, a dangling
    // link) or a copy's resource fork (`._carrier-a.toml`).
    let visible: Vec<PathBuf> = entries
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    // `carrier-b.TOML` is no profile (only `*.toml` are), but meant as one: said, not
    // silently left out (its peer would vanish from routing).
    for p in visible.iter().filter(|p| {
        p.extension()
            .is_some_and(|x| x != "toml" && x.eq_ignore_ascii_case("toml"))
    }) {
        warns.push(ConfigError::file(
            p,
            "warning: not read as a profile: only files ending in `.toml` (lower case) are",
        ));
    }
    let mut files: Vec<PathBuf> = visible
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|path| match crate::config::read::read_text(&path) {
            Ok(t) => (path, Some(t)),
            Err(e) => {
                errs.push(ConfigError::file(&path, e));
                (path, None)
            }
        })
        .collect())
}

/// The profiles' problems when gateway.toml itself cannot be read into its sections (bad
/// TOML, a misspelt key): the operator fixes every file in one pass. The folder is the one
/// `profiles` names if the text is TOML at all, else the default unless a `profiles =` line
/// is there (another folder, which cannot be told: none is checked rather than the wrong
/// one); one that cannot be read adds nothing to gateway.toml's own error.
pub(in crate::config) fn profile_errors_beside(
    gateway_errors: Vec<ConfigError>,
    gateway: &str,
    base: &Path,
    source: ProfileSource<'_>,
) -> crate::config::ConfigErrors {
    let (mut errs, mut warns) = (gateway_errors, Vec::new());
    let table = toml::from_str::<toml::Table>(gateway).ok();
    let named = |l: &str| {
        l.trim_start()
            .strip_prefix("profiles")
            .is_some_and(|r| r.trim_start().starts_with('='))
    };
    let name = match &table {
        Some(t) => t
            .get("profiles")
            .and_then(|v| v.as_str())
            .unwrap_or("profiles"),
        None if matches!(source, ProfileSource::Folder) && gateway.lines().any(named) => {
            return crate::config::ConfigErrors(errs);
        }
        None => "profiles",
    };
    let sources = (source.read(&base.join(name), &mut errs, &mut warns)).unwrap_or_default();
    super::load_profiles(sources, &mut errs, &mut warns);
    errs.extend(warns);
    crate::config::ConfigErrors(errs)
}
