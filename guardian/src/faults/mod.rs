//! The fault catalogue: one registry line per fault, and the plumbing every detector shares.
//!
//! A fault lives in one folder, `faults/<fault>/`: its detector and config (`mod.rs`), its
//! typed evidence (`evidence.rs`), its doc section (`doc.md`) and its replay fixtures. The
//! `registry!` line below turns the folder into the fault id ([`FaultId`]), its
//! `[detect.<fault>]` table ([`DetectConfig`]), its place in the detector list ([`all`]), its
//! evidence variant ([`Evidence`]) and its reload pairing ([`DetectConfig::changed`]).
//!
//! Adding a fault that reuses an existing kernel signal and remedy:
//! - the folder `faults/<fault>/`: `mod.rs` (the detector, `Config`, `detector()`),
//!   `evidence.rs`, `doc.md`, `replay.{record,expected}.ndjson` (recorded with
//!   `guardian run --record`; found by the replay test);
//! - one line in `registry!` below;
//! - the remedy it reuses: its `FaultId` in `Remedy::faults()` (the ladder) and the evidence
//!   it reads;
//! - then `GUARDIAN_BLESS=1 cargo test -p guardian --lib faults::` writes its `doc.md` into
//!   `docs/faults.md` and its name into the schema's `fault_name` enum (both generated files,
//!   checked by unit tests);
//! - one end-to-end test, and a lab scenario.
//!
//! The shared plumbing sits here too ([`detector`], [`tracker`], [`window`], [`incidents`]):
//! `Finding` names a [`FaultId`], and the fault folders implement `Detector`, so the two
//! must live in one top-level module or they would import each other.
pub(crate) mod config;
pub mod detector;
mod evidence;
pub mod incidents;
pub(crate) mod ranges;
pub mod tracker;
pub mod window;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::input::Input;
pub use detector::{observe_all, Baseline, Detector, Finding};

#[cfg(test)]
pub(crate) use detector::observe_net;

/// Declares the catalogue from one line per fault: `module => Variant,`. The module is the
/// folder `faults/<module>/`; it provides `Config` (`()` for a fault without thresholds,
/// whose line is `#[serde(skip)]`), `detector(&Config, &Baseline)` and `doc.md`.
macro_rules! registry {
    ($( $(#[$attr:meta])* $fault:ident => $Id:ident, )*) => {
        $( pub mod $fault; )*

        /// Stable fault ids; serialized as the snake_case names of the event schema.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[allow(non_camel_case_types)] // `Http_5xx`: serde's snake_case of it is `http_5xx`
        pub enum FaultId {
            $( $Id, )*
        }

        impl FaultId {
            /// Every fault, in the catalogue's order.
            pub const ALL: &'static [FaultId] = &[$( FaultId::$Id, )*];

            /// The fault's section of `docs/faults.md` (`faults/<fault>/doc.md`).
            pub const fn doc(self) -> &'static str {
                match self {
                    $( FaultId::$Id => include_str!(concat!(stringify!($fault), "/doc.md")), )*
                }
            }

            /// The stable name, e.g. `link_down`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( FaultId::$Id => stringify!($fault), )*
                }
            }
        }

        /// Thresholds, windows and hysteresis of every detector (`[detect.<fault>]`); the
        /// defaults are the fault catalogue's.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
        pub struct DetectConfig {
            $( $(#[$attr])* pub $fault: $fault::Config, )*
        }

        impl DetectConfig {
            /// The faults whose table differs from `new`'s (their detectors are rebuilt on
            /// reload); faults without thresholds never are.
            pub fn changed(&self, new: &DetectConfig) -> Vec<FaultId> {
                let mut out = Vec::new();
                $( if self.$fault != new.$fault { out.push(FaultId::$Id); } )*
                out
            }

            /// Range-checks every fault's table (`detect.<fault>.<key>`).
            pub fn validate(&self) -> Result<(), ranges::Invalid> {
                $( ranges::Validate::validate(&self.$fault, concat!("detect.", stringify!($fault)))?; )*
                Ok(())
            }
        }

        /// What a detector saw, typed per fault. Serialized as the inner value only (the
        /// event's `fault` says which it is).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        #[allow(non_camel_case_types)]
        pub enum Evidence {
            $( $Id($fault::Evidence), )*
            /// Not a detector's: why the engine closed the incident (e.g. a reload).
            Closed(evidence::Closed),
            /// Unit tests: evidence no remedy understands (e.g. `{}`).
            #[cfg(test)]
            Json(serde_json::Value),
        }

        impl Evidence {
            /// The evidence's own sentence for the event's `message` (its numbers).
            fn detail(&self) -> String {
                match self {
                    $( Evidence::$Id(e) => e.detail(), )*
                    Evidence::Closed(c) => c.detail(),
                    #[cfg(test)]
                    Evidence::Json(v) => v.to_string(),
                }
            }
        }

        /// Every detector, configured, in the catalogue's order.
        pub fn all(cfg: &DetectConfig, base: &Baseline) -> Vec<Box<dyn Detector + Send + Sync>> {
            vec![$( Box::new($fault::detector(&cfg.$fault, base)), )*]
        }
    };
}

registry! {
    #[serde(skip)] link_down => LinkDown,
    #[serde(skip)] route_lost => RouteLost,
    link_flapping => LinkFlapping,
    mtu_blackhole => MtuBlackhole,
    port_conflict => PortConflict,
    time_wait_exhaustion => TimeWaitExhaustion,
    ephemeral_port_exhaustion => EphemeralPortExhaustion,
    retransmit_storm => RetransmitStorm,
    connect_timeout_cascade => ConnectTimeoutCascade,
    connection_refused => ConnectionRefused,
    syn_flood => SynFlood,
    accept_backlog_overflow => AcceptBacklogOverflow,
    connection_flood => ConnectionFlood,
    bandwidth_saturation => BandwidthSaturation,
    dns_failure => DnsFailure,
    http_5xx => Http_5xx,
    http_429 => Http_429,
    http_latency => HttpLatency,
    reset_storm => ResetStorm,
    close_wait_leak => CloseWaitLeak,
    zero_window_stall => ZeroWindowStall,
    dns_spoofing_suspected => DnsSpoofingSuspected,
    tls_handshake_failure => TlsHandshakeFailure,
    tls_cert_expiry => TlsCertExpiry,
}

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Faults order by name, as their strings did: findings and replay output keep their order.
impl Ord for FaultId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for FaultId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::str::FromStr for FaultId {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultId::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFault(s.to_string()))
    }
}

/// A name that is no fault of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}")]
pub struct UnknownFault(pub String);

#[cfg(test)]
mod docs;
#[cfg(test)]
mod tests;
