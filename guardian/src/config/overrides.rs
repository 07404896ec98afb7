//! What `guardian run`'s flags change in the configuration. The command line converts its
//! arguments into [`Overrides`]; the configuration applies them without knowing the flags.
use std::path::PathBuf;

use super::{Config, LogFormat};
use crate::model::Mode;

/// Values given on the command line; `None` or empty: not given, the files' value stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub mode: Option<Mode>,
    pub interval_ms: Option<u64>,
    pub verify_timeout_ms: Option<u64>,
    pub state_dir: Option<PathBuf>,
    pub host: Option<String>,
    /// `[sinks] file`.
    pub events: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    /// Added to `[interfaces] xdp`.
    pub xdp: Vec<String>,
    /// Added to `[interfaces] keep_up`.
    pub keep_up: Vec<String>,
}

impl Config {
    /// Flags over the files: a value that was given wins; `xdp` and `keep_up` add to
    /// `[interfaces]`; `events` sets `[sinks] file` (and so turns stdout off unless
    /// `[sinks] stdout = true`).
    pub fn apply(&mut self, flags: &Overrides) {
        let d = &mut self.daemon;
        if let Some(m) = flags.mode {
            d.mode = m;
        }
        if let Some(v) = flags.interval_ms {
            d.interval_ms = v;
        }
        if let Some(v) = flags.verify_timeout_ms {
            d.verify_timeout_ms = v;
        }
        if let Some(v) = &flags.state_dir {
            d.state_dir = v.clone();
        }
        if let Some(v) = &flags.host {
            d.host = Some(v.clone());
        }
        if let Some(v) = &flags.events {
            self.sinks.file = Some(v.clone());
        }
        if let Some(v) = flags.log_format {
            self.log.format = v;
        }
        for (list, add) in [
            (&mut self.interfaces.xdp, &flags.xdp),
            (&mut self.interfaces.keep_up, &flags.keep_up),
        ] {
            for name in add {
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
        }
    }
}
