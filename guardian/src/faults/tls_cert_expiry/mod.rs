//! `tls_cert_expiry` (layer 7, observe only: the remedy is the report): a local TLS listener
//! presents a certificate that expires within `warn_days` (warning) or has expired (error).
//!
//! Input: the certificates of the namespace's TLS listeners, as the TLS sampler last read
//! them from the listeners themselves (`Input::Tls`'s `certs`, `guardian run --http`; see
//! `source/tls_cert.rs`). Days left are measured from the probe's own time, so a replay
//! decides as the run did. One subject per (namespace, listener); a renewed certificate or a
//! listener gone clears it.
use std::time::Instant;

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::tls::{CertInfo, TlsSample};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::TlsCertExpiry;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Warn this many days before notAfter (1 to 3650).
        pub warn_days: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            warn_days: 14,
            hysteresis: Hysteresis::new(0, 0, 3_600_000),
        }
    }
}

/// Warning and error are two trackers: a certificate that expires while its warning is open
/// clears the warning and opens the error.
pub struct TlsCertExpiry {
    cfg: Config,
    warn: Tracker,
    expired: Tracker,
}

/// Which tracker a certificate belongs to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Expiring,
    Expired,
}

/// The decision for one certificate.
pub fn level(c: &CertInfo, warn_days: u64) -> Option<Level> {
    let left = c.seconds_left();
    if left <= 0 {
        Some(Level::Expired)
    } else if left <= warn_days as i64 * 86_400 {
        Some(Level::Expiring)
    } else {
        None
    }
}

impl TlsCertExpiry {
    pub fn new(cfg: Config) -> Self {
        let meta = |severity| FaultMeta {
            fault: FAULT,
            layer: 7,
            severity,
        };
        Self {
            warn: Tracker::new(meta(Severity::Warning), cfg.hysteresis),
            expired: Tracker::new(meta(Severity::Error), cfg.hysteresis),
            cfg,
        }
    }

    fn on_sample(&mut self, s: &TlsSample, now: Instant) -> Vec<Finding> {
        let (mut warn, mut expired) = (Vec::new(), Vec::new());
        for c in &s.certs {
            let Some(lvl) = level(c, self.cfg.warn_days) else {
                continue;
            };
            let listener = c.listener();
            let hold = Holding {
                key: key(s.netns, &listener),
                netns: Some(s.netns),
                subject: Subject {
                    addr: Some(c.addr.clone()),
                    port: Some(c.port),
                    ..Default::default()
                },
                evidence: super::Evidence::TlsCertExpiry(Evidence {
                    checked_at: chrono::DateTime::from_timestamp(c.checked_unix, 0)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default(),
                    days_left: (c.seconds_left() as f64 / 8_640.0).round() / 10.0,
                    issuer: c.issuer.clone(),
                    listener,
                    not_after: c.not_after.clone(),
                    subject: c.subject.clone(),
                    warn_days: self.cfg.warn_days,
                }),
            };
            match lvl {
                Level::Expiring => warn.push(hold),
                Level::Expired => expired.push(hold),
            }
        }
        let mut out = self.warn.evaluate_netns(now, s.netns, warn);
        out.extend(self.expired.evaluate_netns(now, s.netns, expired));
        out
    }
}

pub fn key(netns: u32, listener: &str) -> String {
    format!("tls_cert_expiry:{netns}:{listener}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> TlsCertExpiry {
    TlsCertExpiry::new(cfg.clone())
}

impl Detector for TlsCertExpiry {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.warn, &mut self.expired]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::Tls(s) => self.on_sample(s, now),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
