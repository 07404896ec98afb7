//! The domain model at the bottom of the house: plain types every floor above shares. It
//! imports nothing of the daemon (only std and external crates), so any module may use it.
//!
//! - [`Mode`], [`Severity`], [`FaultState`], [`Subject`]: what a fault or change is and where;
//! - [`observation`]: kernel observations, their kinds, counter totals and loss sources;
//! - [`sample`]: the per-tick samples the samplers produce and detectors consume;
//! - [`target`]: what a planned change touches, checked by the safety rules.
pub mod http;
pub mod observation;
pub mod sample;
pub mod shadows;
pub mod target;
pub mod tls;

use serde::{Deserialize, Serialize};

pub use observation::{
    AddrCount, ConnectEnd, ConnectEndReason, Counters, DstCount, LossSource, ObsKind, Observation,
    PortCount, XdpIface,
};
pub use target::{RouteDst, Target};

/// Whether guardian only plans (`observe`) or also applies (`enforce`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Detect and plan; change nothing.
    #[default]
    Observe,
    /// Apply, verify, roll back on failure.
    Enforce,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
    Info,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultState {
    Opened,
    Updated,
    Cleared,
}

/// What a fault or remedy is about. Only the fields that apply are present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// A route destination in CIDR form, e.g. `10.9.0.0/24` or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[cfg(test)]
mod tests {
    /// The floor under everything: no file of the model names another module of the daemon.
    #[test]
    fn the_model_imports_nothing_of_the_daemon() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model");
        // Built, so that this test's own text does not match.
        let (path_of, own) = (["crate", "::"].concat(), ["crate", "::model"].concat());
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            files += 1;
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let outside = code
                    .match_indices(&path_of)
                    .any(|(i, _)| !code[i..].starts_with(&own));
                assert!(!outside, "{}:{}: {line}", path.display(), n + 1);
            }
        }
        assert!(files >= 4, "read {files} files of {}", dir.display());
    }
}
