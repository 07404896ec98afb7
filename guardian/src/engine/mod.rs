//! The engine: netlink events → detectors → findings → fault events → remedies, with the
//! safety rules that belong to no single remedy: mode, one attempt per incident,
//! preconditions, write-ahead journal, verification deadline and rollback.
//!
//! Order at start: subscribe to the multicast groups first, then dump links and routes (the
//! baseline), so no change between the snapshot and the subscription is missed. Every event
//! is handled as soon as it arrives; a remedy is applied and verified inline (re-querying the
//! kernel every few milliseconds) so a downed link is back up and verified within
//! milliseconds, not at the next tick.
//!
//! Files: `run.rs` (the loop), `core.rs` (the state, an input's path), `policy.rs` (which rung
//! of a fault's ladder may act), `act.rs` (journal → apply → verify → keep or roll back),
//! `active.rs` and `change.rs` (changes still in place), `recover.rs` (the journal at start,
//! rollback by hand) and `recheck.rs` (the checks a journaled undo passes again), `net.rs` (links and routes), `ladder.rs` and `safety.rs` (success rates,
//! safety rules and budgets), `api/` (requests and views), `control.rs` and `control/`
//! (answering them), `incidents.rs` (incidents kept for them), `config.rs`. None of them
//! imports this file.
mod act;
mod active;
mod addr_loss;
pub mod api;
mod backoff;
mod change;
mod config;
mod control;
mod core;
mod incidents;
pub mod ladder;
mod net;
mod peers;
mod policy;
pub mod recheck;
pub mod recover;
mod run;
pub mod safety;
mod undo;

pub use crate::faults::incidents::IncidentKey;
/// Routes worth protecting (kept in `remedy::routing`, where route remedies use it too).
pub use crate::remedy::routing::protected;
pub use config::{EngineConfig, EngineError, DEFAULT_VERIFY_TIMEOUT};
pub use run::run;
pub use safety::SafetyConfig;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::netlink::{self, RouteSpec};
    use crate::probes::Maps;

    #[test]
    fn missing_keep_up_is_one_clear_sentence() {
        let e: anyhow::Error = EngineError::MissingKeepUp("eth9".into()).into();
        assert_eq!(
            e.to_string(),
            "interface eth9 named by --keep-up does not exist in this network namespace"
        );
    }

    #[test]
    fn kernel_ra_and_other_table_routes_are_not_protected() {
        let r = RouteSpec::new("10.9.0.0".parse().unwrap(), 24).dev(3);
        assert!(protected(&r));
        let mut k = r.clone();
        k.protocol = netlink::RTPROT_KERNEL;
        assert!(!protected(&k));
        let mut ra = r.clone();
        ra.protocol = netlink::RTPROT_RA;
        assert!(!protected(&ra));
        let mut local = r.clone();
        local.table = 255;
        assert!(!protected(&local));
    }

    #[test]
    fn run_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let fut = async {
            let (emitter, _writer) = crate::output::open(None, "h".into()).await.unwrap();
            let (_tx, rx) = crate::source::feed::channel();
            run(
                EngineConfig::default(),
                emitter,
                rx,
                Maps::default(),
                tokio::sync::oneshot::channel().0,
                CancellationToken::new(),
                api::Wiring::detached(),
            )
            .await
        };
        is_send(&fut);
    }

    #[test]
    fn default_verify_timeout_is_two_seconds() {
        assert_eq!(
            EngineConfig::default().verify_timeout,
            Duration::from_secs(2)
        );
    }
}
