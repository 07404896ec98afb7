//! The configuration file (`guardian run --config FILE`): `[detect.<fault>]` thresholds,
//! `[remedies]` modes and per-remedy tables, `[safety]`. Every key is checked (unknown keys
//! are errors) and every value validated before anything is attached.
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::DetectConfig;
use crate::engine::SafetyConfig;
use crate::preflight::PreflightError;
use crate::remedy::{self, RemedyConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub detect: DetectConfig,
    pub remedies: RemedyConfig,
    pub safety: SafetyConfig,
}

impl Config {
    /// Checks what the types cannot: value ranges and remedy names.
    pub fn validate(&self) -> Result<(), String> {
        self.safety.validate()?;
        let known: Vec<&str> = remedy::all(&RemedyConfig::default(), &[])
            .iter()
            .map(|r| r.name())
            .collect();
        for name in self.remedies.modes.keys() {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "remedies.modes: unknown remedy {name:?}; expected one of {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Reads `--config` (or the defaults) and, for compatibility, `--detect-config` (a file with
/// only the `[detect]` tables at top level), which may not be combined with `[detect]`.
pub fn load(config: Option<&Path>, detect: Option<&Path>) -> Result<Config, PreflightError> {
    let mut cfg: Config = match config {
        Some(p) => parse(p)?,
        None => Config::default(),
    };
    if let Some(p) = detect {
        cfg.detect = parse(p)?;
    }
    cfg.validate().map_err(|reason| PreflightError::Config {
        path: config.map(|p| p.display().to_string()).unwrap_or_default(),
        reason,
    })?;
    Ok(cfg)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PreflightError> {
    let err = |reason: String| PreflightError::Config {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn every_section_parses() {
        let c = parse_str(
            r#"
            [detect.syn_flood]
            [remedies]
            modes = { link_up = "observe" }
            [safety]
            protected_ports = [22, 443]
            max_targets = 4
            "#,
        )
        .unwrap();
        assert_eq!(c.safety.protected_ports, [22, 443]);
        assert_eq!(c.remedies.mode_of("link_up"), remedy::RemedyMode::Observe);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse_str("[safety]\nmax_tragets = 4\n").unwrap_err();
        assert!(e.contains("max_tragets"), "{e}");
        let e = parse_str("[remedies]\nmodes = { link_upp = \"off\" }\n").unwrap_err();
        assert!(e.contains("unknown remedy \"link_upp\""), "{e}");
        let e = parse_str("[safety]\nmin_confidence = 3.0\n").unwrap_err();
        assert!(e.starts_with("safety.min_confidence"), "{e}");
        let e = parse_str("[remedies]\nmodes = { link_up = \"sometimes\" }\n").unwrap_err();
        assert!(e.contains("sometimes"), "{e}");
    }
}
