//! Finding and reading the config files: the main file and its drop-in directory.
//!
//! - No `--config`: `/etc/guardian/guardian.toml` (missing: the defaults) and
//!   `/etc/guardian/guardian.d/*.toml`.
//! - `--config DIR/NAME.toml`: that file (missing: an error) and `DIR/NAME.d/*.toml`, so the
//!   default file's drop-ins are `guardian.d/` and two files in one directory never share
//!   drop-ins.
//!
//! Drop-ins are read in lexical (byte) order of their names; names starting with `.` and
//! names not ending in `.toml` are ignored (a Kubernetes ConfigMap mount's `..data` entries).
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{line_col, ConfigError};

pub const DEFAULT_MAIN: &str = "/etc/guardian/guardian.toml";

/// One config file as read: its text and its tables.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub text: String,
    pub table: toml::Table,
}

/// The drop-in directory belonging to a main file: `DIR/NAME.d` for `DIR/NAME.toml`.
pub fn drop_in_dir(main: &Path) -> PathBuf {
    let stem = main.file_stem().unwrap_or_default().to_string_lossy();
    main.with_file_name(format!("{stem}.d"))
}

/// The files to read, in merge order (main first). A missing default main file or drop-in
/// directory is not an error; a missing explicit `--config` is.
pub fn discover(explicit: Option<&Path>) -> Result<Vec<PathBuf>, ConfigError> {
    let main = explicit.unwrap_or(Path::new(DEFAULT_MAIN));
    let mut files = Vec::new();
    match std::fs::metadata(main) {
        Ok(m) if m.is_file() => files.push(main.to_path_buf()),
        Ok(_) => return Err(ConfigError::new(Some(main), "not a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {}
        Err(e) => return Err(ConfigError::new(Some(main), format!("cannot read it: {e}"))),
    }
    let dir = drop_in_dir(main);
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => {
            return Err(ConfigError::new(
                Some(&dir),
                format!("cannot read the drop-in directory: {e}"),
            ))
        }
    };
    let mut drop_ins = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigError::new(
                Some(&dir),
                format!("cannot read the drop-in directory: {e}"),
            )
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: ConfigMap files are symlinks into `..data/`.
        if path.is_dir() {
            continue;
        }
        drop_ins.push(path);
    }
    drop_ins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.extend(drop_ins);
    Ok(files)
}

/// Reads one file, checking it on its own against `T` (every key known, every type right),
/// so that errors point into the file that has them.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<(File, T), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(Some(path), format!("cannot read it: {e}")))?;
    let value = check::<T>(path, &text)?;
    let table = toml::from_str::<toml::Table>(&text)
        .map_err(|e| ConfigError::from_toml(path, &text, None, &e))?;
    Ok((
        File {
            path: path.to_path_buf(),
            text,
            table,
        },
        value,
    ))
}

/// Deserializes `text` as `T`, naming the key path of the first error.
pub fn check<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::from_toml(path, text, None, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::from_toml(path, text, Some(key), e.inner())
    })
}

/// Where `key` (dotted) is set: the last file that sets it (or its longest set prefix), and
/// the line and column of its value there.
pub fn locate(files: &[File], key: &str) -> (Option<PathBuf>, Option<(usize, usize)>) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut best: Option<(usize, &File, usize)> = None;
    for f in files.iter().rev() {
        let Ok(doc) = toml::de::DeTable::parse(&f.text) else {
            continue;
        };
        let mut table = doc.get_ref();
        let mut depth = 0;
        let mut span = None;
        for part in &parts {
            let Some((_, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *part) else {
                break;
            };
            depth += 1;
            span = Some(v.span().start);
            match v.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        if let Some(at) = span {
            if best.is_none_or(|(d, _, _)| depth > d) {
                best = Some((depth, f, at));
            }
            if depth == parts.len() {
                break;
            }
        }
    }
    match best {
        Some((_, f, at)) => (Some(f.path.clone()), Some(line_col(&f.text, at))),
        None => (None, None),
    }
}
