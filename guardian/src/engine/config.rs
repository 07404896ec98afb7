//! The engine's configuration, the error it refuses to start with, and its timing constants.
use std::path::PathBuf;
use std::time::Duration;

use super::safety::SafetyConfig;
use crate::faults::DetectConfig;
use crate::model::Mode;
use crate::remedy::RemedyConfig;

/// How long a change has to verify before it is rolled back.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often verification re-queries the kernel.
pub(super) const VERIFY_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: Mode,
    /// Interfaces to keep up (`--keep-up IF`); also the interfaces `link_down` watches.
    pub keep_up: Vec<String>,
    /// Where the journal lives (created 0700 in enforce mode).
    pub state_dir: PathBuf,
    /// The daemon's network namespace inode, reported in events.
    pub netns: u32,
    pub verify_timeout: Duration,
    /// Thresholds of every detector.
    pub detect: DetectConfig,
    /// Write every detector input to this file (`--record`), for `guardian replay`.
    pub record: Option<PathBuf>,
    /// Per-remedy modes and parameters.
    pub remedies: RemedyConfig,
    /// Budgets, blast radius, protected subjects, effect deadline, confidence.
    pub safety: SafetyConfig,
}

impl EngineConfig {
    pub fn new(mode: Mode, keep_up: Vec<String>, state_dir: PathBuf, netns: u32) -> Self {
        EngineConfig {
            mode,
            keep_up,
            state_dir,
            netns,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
            detect: DetectConfig::default(),
            record: None,
            remedies: RemedyConfig::default(),
            safety: SafetyConfig::default(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::new(
            Mode::Observe,
            Vec::new(),
            PathBuf::from("/var/lib/guardian"),
            0,
        )
    }
}

/// Configuration the engine refuses at start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("interface {0} named by --keep-up does not exist in this network namespace")]
    MissingKeepUp(String),
}
