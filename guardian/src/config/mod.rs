//! The configuration: `/etc/guardian/guardian.toml` and its drop-ins (see [`source`] for
//! which files are read and [`merge`] for how), then `guardian run` flags over them (as
//! [`Overrides`]; this module does not know the command line).
//!
//! Sections: `[detect.<fault>]` thresholds, `[remedies]` modes and per-remedy tables,
//! `[safety]`, `[sinks]`, `[log]`, `[metrics]`, `[interfaces]`, `[control]`, `[daemon]`.
//! Every key is checked (unknown keys are errors) and every value validated before anything
//! is attached; an error names the file, line, key path and what was expected (exit 78).
//! docs/operations.md has the reference.
pub mod error;
pub mod merge;
pub mod overrides;
pub mod perms;
pub mod sections;
pub mod source;
#[cfg(test)]
mod tests;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::ConfigError;
pub use overrides::Overrides;
pub use sections::{Control, Daemon, DstScope, Interfaces, Log, LogFormat, Metrics, Sinks};

use crate::engine::SafetyConfig;
use crate::faults::DetectConfig;
use crate::remedy::RemedyConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub detect: DetectConfig,
    pub remedies: RemedyConfig,
    pub safety: SafetyConfig,
    pub sinks: Sinks,
    pub log: Log,
    pub metrics: Metrics,
    pub interfaces: Interfaces,
    pub control: Control,
    pub daemon: Daemon,
    /// The files this was read from, in merge order (main file first).
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

impl Config {
    /// Checks what the types cannot: value ranges, remedy names, addresses, interface names.
    pub fn validate(&self) -> Result<(), String> {
        validate::validate(self).map_err(|i| format!("{}: {}", i.key, i.what))
    }
}

/// Reads and validates the config files: the main file (`config`, default
/// `/etc/guardian/guardian.toml`) and its drop-ins, and, for compatibility, `detect` (a file
/// with only the `[detect]` tables at top level, replacing `[detect]`). No flags applied:
/// call it again to reload (SIGHUP), then [`Config::apply`].
pub fn load(config: Option<&Path>, detect: Option<&Path>) -> Result<Config, ConfigError> {
    load_files(config, detect)
}

/// [`load`] with `guardian run`'s flags applied and checked: what the daemon runs with.
pub fn resolve(
    config: Option<&Path>,
    detect: Option<&Path>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let mut cfg = load(config, detect)?;
    cfg.apply(flags);
    // The files were valid on their own: what fails now came from a flag.
    validate::validate(&cfg).map_err(|i| ConfigError {
        file: None,
        at: None,
        key: Some(i.key),
        what: i.what,
    })?;
    Ok(cfg)
}

pub fn load_files(config: Option<&Path>, detect: Option<&Path>) -> Result<Config, ConfigError> {
    let paths = source::discover(config)?;
    let mut files = Vec::with_capacity(paths.len());
    let mut merged = toml::Table::new();
    for p in &paths {
        let (file, _) = source::read::<Config>(p)?;
        merge::merge(&mut merged, file.table.clone());
        files.push(file);
    }
    let mut cfg: Config = merged.try_into().map_err(|e: toml::de::Error| {
        // Each file was valid alone; a merge of valid tables stays valid. Defensive only.
        ConfigError::new(paths.last().map(PathBuf::as_path), e.message().to_string())
    })?;
    if let Some(p) = detect {
        // Its keys are written without `detect.` (`[syn_flood]`): named as written.
        let (file, detect) = source::read::<DetectConfig>(p)?;
        detect.validate().map_err(|i| {
            let key = i.key.strip_prefix("detect.").unwrap_or(&i.key).to_string();
            let (_, at) = source::locate(std::slice::from_ref(&file), &key);
            ConfigError {
                file: Some(p.to_path_buf()),
                at,
                key: Some(key),
                what: i.what,
            }
        })?;
        cfg.detect = detect;
    }
    validate::validate(&cfg).map_err(|i| {
        let (f, at) = source::locate(&files, &i.key);
        ConfigError {
            // Nothing set it: a default is invalid only if the code is wrong; name the main file.
            file: f.or_else(|| paths.first().cloned()),
            at,
            key: Some(i.key),
            what: i.what,
        }
    })?;
    cfg.files = paths;
    cfg.files.extend(detect.map(Path::to_path_buf));
    Ok(cfg)
}
