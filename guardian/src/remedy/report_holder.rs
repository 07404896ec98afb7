//! `report_holder` (first rung of `port_conflict`): names who holds the port. Changes
//! nothing ([`Action::Nothing`], [`Verify::Nothing`]); the holders go in `change.after`, one
//! entry per (socket, process): pid, comm, systemd unit, process uid, socket uid and inode.
//!
//! The sockets are read fresh at planning time from INET_DIAG in the fault's namespace (every
//! state, local port = the conflicting port, address overlapping the failed bind's; the
//! finding's `holders` only list listeners and are the fallback when the table cannot be
//! read), then mapped to processes by a `/proc/*/fd` scan ([`super::holders`]).
//!
//! When no process owns any of them (every holder is orphaned: TIME_WAIT or a closed
//! connection still finishing), there is no process to report and the remedy skips, saying
//! so, and the ladder moves on to `socket_destroy`.
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::holders::SocketRef;
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use crate::faults::{port_conflict, Evidence, FaultId, Finding};

pub const NAME: RemedyId = RemedyId::ReportHolder;

/// At most this many holders are listed.
const MAX_LISTED: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct ReportHolder;

impl ReportHolder {
    pub fn new() -> Self {
        ReportHolder
    }
}

/// Whether a socket bound to `local` conflicts with a bind to `bind` (same port assumed):
/// the same address, or either is a wildcard. An unknown bind address conflicts with all.
pub fn overlaps(bind: Option<&str>, local: &str) -> bool {
    let wild = |a: &str| a == "0.0.0.0" || a == "::";
    bind.is_none_or(|b| wild(b) || wild(local) || b == local)
}

/// The evidence of a `port_conflict` finding.
pub fn evidence(f: &Finding) -> Option<&port_conflict::Evidence> {
    match &f.evidence {
        Evidence::PortConflict(e) => Some(e),
        _ => None,
    }
}

/// The sockets holding the finding's port: a fresh dump when it can be read, else the
/// finding's listeners. None when the finding names no port.
pub fn holding(f: &Finding, ctx: &PlanContext<'_>) -> Option<(u16, Option<Vec<SocketRef>>)> {
    let port = f.subject.port?;
    let bind = evidence(f).and_then(|e| e.binder.addr.as_deref());
    let dumped = ctx.state.tcp_sockets(f.netns, port).map(|v| {
        v.into_iter()
            .filter(|s| overlaps(bind, &s.src.to_string()))
            .collect()
    });
    Some((port, dumped))
}

impl Remedy for ReportHolder {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[port_conflict::FAULT]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != port_conflict::FAULT {
            return None;
        }
        let (port, dumped) = holding(f, ctx)?;
        // (addr, state, socket uid, inode) of each holder.
        let sockets: Vec<(String, String, Option<u64>, u32)> = match dumped {
            Some(v) => v
                .iter()
                .map(|s| {
                    (
                        s.src.to_string(),
                        s.state.clone(),
                        Some(s.uid.into()),
                        s.inode,
                    )
                })
                .collect(),
            None => evidence(f)
                .into_iter()
                .flat_map(|e| &e.holders)
                .map(|h| {
                    let addr = h.addr.clone();
                    (addr, "listen".to_string(), Some(u64::from(h.uid)), h.inode)
                })
                .collect(),
        };
        if sockets.is_empty() {
            return Some(Plan::Skip(format!("no socket holds port {port} any more")));
        }
        let inodes: Vec<u32> = sockets.iter().map(|s| s.3).filter(|&i| i != 0).collect();
        let owners = ctx.state.socket_owners(&inodes);
        let mut listed = Vec::new();
        let mut unowned = Vec::new();
        for (addr, state, uid, inode) in &sockets {
            match owners.get(inode).filter(|o| !o.is_empty()) {
                Some(procs) => listed.extend(procs.iter().map(|p| {
                    json!({
                        "pid": p.pid, "comm": p.comm, "unit": p.unit, "uid": p.uid,
                        "socket_uid": uid, "inode": inode, "addr": addr, "port": port,
                        "state": state,
                    })
                })),
                None => unowned.push(json!({
                    "addr": addr, "state": state, "socket_uid": uid, "inode": inode,
                })),
            }
        }
        if listed.is_empty() {
            let states: Vec<&str> = sockets.iter().map(|s| s.1.as_str()).collect();
            return Some(Plan::Skip(format!(
                "no process owns the {} socket(s) holding port {port} ({}): orphaned",
                sockets.len(),
                states.join(", ")
            )));
        }
        let total = listed.len();
        listed.truncate(MAX_LISTED);
        unowned.truncate(MAX_LISTED);
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: vec![crate::model::Target::Port(port)],
            apply: Action::Nothing,
            inverse: Action::Nothing,
            verify: Verify::Nothing,
            effect: Effect::InPlace,
            lifetime: Lifetime::Permanent,
            before: json!({"port": port, "binder": evidence(f).map(|e| &e.binder)}),
            after: json!({
                "port": port,
                "holders": listed,
                "holders_total": total,
                "unowned": unowned,
            }),
        })))
    }
}

/// A `port_conflict` finding for `port` in `netns` with a failed bind to `addr` and the
/// listeners the detector saw (`(addr, uid, inode)`), for the unit tests of this rung and the
/// next.
#[cfg(test)]
pub(crate) fn finding(
    netns: Option<u32>,
    port: u16,
    addr: &str,
    held: &[(&str, u32, u32)],
) -> Finding {
    use crate::model::{FaultState, Severity, Subject};
    let holders: Vec<port_conflict::evidence::Holder> = held
        .iter()
        .map(|(a, uid, inode)| port_conflict::evidence::Holder {
            addr: a.to_string(),
            port,
            uid: *uid,
            inode: *inode,
            state: "listen",
        })
        .collect();
    Finding {
        fault: port_conflict::FAULT,
        layer: 4,
        severity: Severity::Warning,
        state: FaultState::Opened,
        subject: Subject {
            addr: Some(addr.to_string()),
            port: Some(port),
            ..Default::default()
        },
        evidence: Evidence::PortConflict(port_conflict::Evidence {
            binder: port_conflict::evidence::Binder {
                pid: 77,
                tid: 77,
                comm: "second".into(),
                family: Some("2".into()),
                addr: Some(addr.to_string()),
            },
            conflicts: 1,
            since_last_report: 1,
            holders,
        }),
        key: format!("{}/{port}", netns.unwrap_or(0)),
        netns,
    }
}

/// A socket of port `port` in namespace 9 bound to 10.0.0.1, for unit tests.
#[cfg(test)]
pub(crate) fn sock(port: u16, state: &str, inode: u32, cookie: u64) -> SocketRef {
    SocketRef {
        netns: Some(9),
        src: "10.0.0.1".parse().unwrap(),
        sport: port,
        dst: "0.0.0.0".parse().unwrap(),
        dport: 0,
        ifindex: 0,
        cookie,
        state: state.into(),
        uid: 0,
        inode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::holders::Owner;
    use crate::remedy::testing::{change, ctx, FakeState};

    fn owner(pid: u32, comm: &str) -> Owner {
        Owner {
            pid,
            comm: comm.into(),
            uid: Some(1000),
            unit: Some("web.service".into()),
        }
    }

    #[test]
    fn names_the_process_behind_the_listener() {
        let mut st = FakeState::default();
        st.sockets
            .insert((Some(9), 80), vec![sock(80, "listen", 555, 1)]);
        st.owners.insert(555, vec![owner(42, "nginx")]);
        let f = finding(Some(9), 80, "10.0.0.1", &[]);
        let p = change(&ReportHolder, &f, &ctx(&st));
        assert_eq!(p.apply, Action::Nothing);
        assert_eq!(p.inverse, Action::Nothing);
        assert_eq!(p.verify, Verify::Nothing);
        assert_eq!(p.targets, ["port:80"]);
        let h = &p.after["holders"][0];
        assert_eq!(h["pid"], 42);
        assert_eq!(h["comm"], "nginx");
        assert_eq!(h["unit"], "web.service");
        assert_eq!(h["uid"], 1000);
        assert_eq!(h["inode"], 555);
        assert_eq!(p.before["binder"]["comm"], "second");
    }

    #[test]
    fn falls_back_to_the_findings_listeners_when_the_table_cannot_be_read() {
        let mut st = FakeState::default();
        st.owners.insert(777, vec![owner(43, "old")]);
        let f = finding(Some(9), 81, "10.0.0.1", &[("0.0.0.0", 0, 777)]);
        let p = change(&ReportHolder, &f, &ctx(&st));
        assert_eq!(p.after["holders"][0]["pid"], 43);
        assert_eq!(p.after["holders"][0]["addr"], "0.0.0.0");
    }

    #[test]
    fn skips_orphans_nothing_and_other_faults() {
        let mut st = FakeState::default();
        st.sockets.insert(
            (Some(9), 82),
            vec![sock(82, "fin-wait-2", 0, 5), sock(82, "time-wait", 0, 6)],
        );
        st.sockets.insert((Some(9), 83), vec![]);
        // another address on the same port does not conflict
        let mut other = sock(84, "listen", 9, 7);
        other.src = "10.0.0.2".parse().unwrap();
        st.sockets.insert((Some(9), 84), vec![other]);
        let plan = |port| ReportHolder.plan(&finding(Some(9), port, "10.0.0.1", &[]), &ctx(&st));
        match plan(82) {
            Some(Plan::Skip(r)) => assert!(
                r.contains("orphaned") && r.contains("fin-wait-2, time-wait"),
                "{r}"
            ),
            p => panic!("{p:?}"),
        }
        assert!(matches!(plan(83), Some(Plan::Skip(r)) if r.contains("any more")));
        assert!(matches!(plan(84), Some(Plan::Skip(_))));
        let mut f = finding(Some(9), 82, "10.0.0.1", &[]);
        f.fault = crate::faults::FaultId::SynFlood;
        assert!(ReportHolder.plan(&f, &ctx(&st)).is_none());
        assert!(overlaps(Some("::"), "10.0.0.1") && overlaps(None, "1.2.3.4"));
        assert!(!overlaps(Some("10.0.0.1"), "10.0.0.2"));
    }
}
