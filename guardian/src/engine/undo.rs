//! Running a journaled undo (recovery at start, rollback by hand): checked again first
//! ([`Guard`]), never over someone else's later change ([`changed_since`]), only reported in
//! observe mode.
use super::recheck::Guard;
use crate::journal::{JournalPhase, Record};
use crate::output::RemedyResult;
use serde_json::Value;

use crate::remedy::{Action, Effect, Kernel, RemedyError, Verify};

/// A journaled change, decoded.
pub struct Decoded {
    pub apply: Action,
    pub inverse: Action,
    pub verify: Verify,
    pub effect: Effect,
}

pub fn decode(r: &Record) -> Result<Decoded, String> {
    let d = |v: &Value, what: &str| format!("cannot decode the {what} of change {}: {v}", r.id);
    Ok(Decoded {
        apply: serde_json::from_value(r.action.clone()).map_err(|_| d(&r.action, "action"))?,
        inverse: serde_json::from_value(r.inverse.clone()).map_err(|_| d(&r.inverse, "inverse"))?,
        verify: serde_json::from_value(r.verify.clone()).unwrap_or(Verify::Nothing),
        effect: serde_json::from_value(r.effect.clone()).unwrap_or_default(),
    })
}

/// What became of one unfinished change. `phase` equal to the change's last phase: nothing
/// is journaled (`event` says what to report, if anything).
pub struct Settled {
    pub phase: JournalPhase,
    pub reason: String,
    pub event: Option<RemedyResult>,
}

impl Settled {
    pub(super) fn new(phase: JournalPhase, reason: String) -> Self {
        Settled {
            phase,
            reason,
            event: None,
        }
    }
}

/// Why a change's state is no longer what guardian left (someone else changed it since),
/// for the kinds of state others change: sysctls and routes. `None`: still guardian's, or
/// nothing to compare.
pub async fn changed_since(k: &mut Kernel, v: &Verify) -> Option<String> {
    match v {
        Verify::Sysctl { netns, key, value } => {
            let ns = k.netns_path(*netns).ok()?;
            let now = crate::sysctl::read(ns.as_deref(), key).ok()?;
            (now != crate::sysctl::normalize(value)).then(|| {
                format!(
                    "{key} is now \"{now}\", not the \"{}\" guardian set: someone else changed it",
                    crate::sysctl::normalize(value)
                )
            })
        }
        Verify::RoutePresent(_) | Verify::RouteAbsent(_) | Verify::RouteVia { .. } => {
            match v.check(k).await {
                Ok(false) => Some(
                    "the route is no longer as guardian left it: someone else changed it".into(),
                ),
                _ => None,
            }
        }
        Verify::All { checks } => {
            for c in checks {
                if let Some(why) = Box::pin(changed_since(k, c)).await {
                    return Some(why);
                }
            }
            None
        }
        _ => None,
    }
}

/// How running a journaled undo went.
pub(super) enum Undo {
    Done,
    /// The checks refused it (nothing run).
    Refused(String),
    /// Observe mode: what would be run.
    WouldRun(String),
    /// Someone else changed the state since guardian did: left as it is.
    Changed(String),
    Failed(RemedyError),
}

/// Checks, then runs, the undo of `r`. `after_verified`: the change was in place, so a
/// state that differs now is someone else's later change.
pub(super) async fn undo(
    k: &mut Kernel,
    r: &Record,
    d: &Decoded,
    guard: &Guard,
    observe: bool,
    after_verified: bool,
) -> Undo {
    if let Err(why) = guard.check(r, &d.inverse) {
        return Undo::Refused(why);
    }
    if after_verified {
        if let Some(why) = changed_since(k, &d.verify).await {
            return Undo::Changed(why);
        }
    }
    if observe {
        return Undo::WouldRun(format!("observe mode: would run {}", d.inverse));
    }
    match d.inverse.execute(k).await {
        Ok(()) | Err(RemedyError::Unavailable(_)) => Undo::Done,
        Err(e) => Undo::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ChangeState;
    use crate::remedy::Action;

    const KEY: &str = "net.ipv4.tcp_tw_reuse";

    fn kernel() -> Kernel {
        Kernel::new(
            crate::netlink::Netlink::connect().unwrap(),
            42,
            crate::probes::Maps::default(),
        )
    }

    fn change(netns: u32, live: &str, phase: JournalPhase) -> ChangeState {
        let other = if live == "1" { "2" } else { "1" };
        let set = |v: &str| Action::SetSysctl {
            netns: None,
            key: KEY.into(),
            value: v.into(),
        };
        let mut r = crate::journal::tests::record("x", phase);
        r.remedy = "sysctl".into();
        r.netns = netns;
        r.action = serde_json::to_value(set(other)).unwrap();
        r.inverse = serde_json::to_value(set(live)).unwrap();
        r.verify = serde_json::to_value(Verify::Sysctl {
            netns: None,
            key: KEY.into(),
            value: other.into(),
        })
        .unwrap();
        ChangeState {
            first: r,
            last: phase,
            last_ts: String::new(),
            last_error: None,
        }
    }

    fn guard() -> Guard {
        Guard {
            own_netns: 42,
            ..Guard::default()
        }
    }

    fn live() -> String {
        crate::sysctl::read(None, KEY).unwrap()
    }

    #[tokio::test]
    async fn observe_mode_only_reports_and_netns_0_is_refused() {
        let mut k = kernel();
        let before = live();
        // An unverified change whose check fails: enforce would run the undo; observe
        // reports it and changes nothing (the undo would write the live value anyway, so
        // nothing could change even if it ran).
        let c = change(42, &before, JournalPhase::Applied);
        let s = super::super::recover::settle(&mut k, &c, 0, &guard(), true).await;
        assert_eq!(s.phase, JournalPhase::Applied);
        assert_eq!(s.event, Some(RemedyResult::Planned));
        assert!(
            s.reason.contains("observe mode: would run sysctl -w"),
            "{}",
            s.reason
        );
        let c = change(0, &before, JournalPhase::Applied);
        let s = super::super::recover::settle(&mut k, &c, 0, &guard(), false).await;
        assert_eq!(s.phase, JournalPhase::Applied, "nothing journaled");
        assert_eq!(s.event, Some(RemedyResult::Skipped));
        assert!(s.reason.contains("netns 0"), "{}", s.reason);
        assert_eq!(live(), before);
    }

    #[tokio::test]
    async fn a_later_change_by_someone_else_is_not_overwritten() {
        let mut k = kernel();
        let before = live();
        // guardian "set" the other value and it now reads `before`: someone changed it.
        let c = change(42, &before, JournalPhase::Verified);
        let d = super::super::recover::decode(&c.first).unwrap();
        let why = changed_since(&mut k, &d.verify).await.unwrap();
        assert!(why.contains("someone else changed it"), "{why}");
        let s = super::super::recover::revert(&mut k, &c, &guard()).await;
        assert_eq!(s.phase, JournalPhase::Superseded);
        assert!(
            s.reason
                .starts_with("not reverted: net.ipv4.tcp_tw_reuse is now"),
            "{}",
            s.reason
        );
        assert_eq!(live(), before);
    }
}
