//! `socket_destroy` (second rung of `port_conflict`): destroys, with INET_DIAG `SOCK_DESTROY`
//! (what `ss -K` does), the ORPHANED sockets that hold a conflicting port, and only on ports
//! an operator listed in `remedies.socket_destroy.allow_ports` (default: none, never acts).
//!
//! Orphaned, precisely: a socket no file refers to (INET_DIAG inode 0) — a TIME_WAIT socket,
//! or a connection its process already closed that is still finishing (FIN_WAIT1, FIN_WAIT2,
//! CLOSING, LAST_ACK). Such sockets keep a port bound after the server that owned it exited,
//! so a restarted server's bind(2) without SO_REUSEADDR fails with EADDRINUSE for up to
//! `tcp_fin_timeout` (60 s) or longer while FINs are retransmitted. A listening socket always
//! has a file, so it is never destroyed; and when ANY socket on the port has a file (a live
//! listener, or a connection still in a live listener's accept queue next to one), the port
//! is held by a process and the remedy skips: destroying orphans would not free it.
//!
//! Destroying aborts the connection (an RST to the peer for FIN_WAIT states) and cannot be
//! undone: the inverse is [`Action::Nothing`]; the journal still records every socket
//! destroyed (`change.before`). Verified when a re-dump of the namespace shows no socket with
//! the destroyed sockets' cookies (the kernel's per-socket id; orphans all have inode 0).
//! Needs `CONFIG_INET_DIAG_DESTROY`, probed once (a destroy of a socket that cannot exist
//! answers ENOENT when supported, EOPNOTSUPP when not); without it the remedy skips.
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use crate::faults::{port_conflict, FaultId, Finding};

pub const NAME: RemedyId = RemedyId::SocketDestroy;

/// `[remedies.socket_destroy]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Ports whose orphaned holders may be destroyed. Empty (the default): never acts.
    pub allow_ports: Vec<u16>,
    /// Refuse to destroy more than this many sockets in one change.
    pub max_sockets: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allow_ports: Vec::new(),
            max_sockets: 64,
        }
    }
}

#[derive(Debug, Default)]
pub struct SocketDestroy {
    cfg: Config,
    /// Whether the kernel can destroy sockets (Err: why not), probed on first need.
    supported: OnceLock<Result<(), String>>,
}

impl SocketDestroy {
    pub fn new(cfg: Config) -> Self {
        SocketDestroy {
            cfg,
            supported: OnceLock::new(),
        }
    }

    fn supported(&self) -> &Result<(), String> {
        self.supported.get_or_init(probe)
    }
}

impl Remedy for SocketDestroy {
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
        let (port, dumped) = super::report_holder::holding(f, ctx)?;
        let skip = |r: String| Some(Plan::Skip(r));
        if !self.cfg.allow_ports.contains(&port) {
            return skip(format!(
                "port {port} is not in remedies.socket_destroy.allow_ports"
            ));
        }
        let Some(sockets) = dumped else {
            return skip(format!("cannot read the sockets of port {port}"));
        };
        if sockets.is_empty() {
            return skip(format!("no socket holds port {port} any more"));
        }
        if let Some(s) = sockets.iter().find(|s| s.inode != 0) {
            return skip(format!(
                "port {port} is held by a socket a process has open ({}, inode {}): only \
                 orphaned sockets are destroyed",
                s.state, s.inode
            ));
        }
        if sockets.len() > self.cfg.max_sockets {
            return skip(format!(
                "{} orphaned sockets hold port {port}, more than remedies.socket_destroy.max_sockets = {}",
                sockets.len(),
                self.cfg.max_sockets
            ));
        }
        if let Err(why) = self.supported() {
            return skip(why.clone());
        }
        let (apply, verify) = if let [s] = sockets.as_slice() {
            (
                Action::DestroySocket(s.clone()),
                Verify::SocketGone(s.clone()),
            )
        } else {
            let pairs = sockets
                .iter()
                .map(|s| (Action::DestroySocket(s.clone()), Action::Nothing))
                .collect();
            let checks = sockets.iter().cloned().map(Verify::SocketGone).collect();
            (Action::all(pairs).0, Verify::All { checks })
        };
        // One subject: the port (protected ports are refused by the engine); the sockets
        // are bounded by max_sockets and listed in `before`.
        let targets = vec![crate::model::Target::Port(port)];
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets,
            apply,
            inverse: Action::Nothing,
            verify,
            effect: Effect::InPlace,
            lifetime: Lifetime::Permanent,
            before: json!({"port": port, "orphaned": sockets}),
            after: json!({"port": port, "orphaned": [], "destroyed": sockets.len(), "reversible": false}),
        })))
    }
}

/// Whether SOCK_DESTROY works here (see [`super::exec::socket::supported`]).
fn probe() -> Result<(), String> {
    super::exec::socket::supported()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::report_holder::{finding, sock};
    use crate::remedy::testing::{change, ctx, FakeState};

    fn remedy(ports: &[u16]) -> SocketDestroy {
        let r = SocketDestroy::new(Config {
            allow_ports: ports.to_vec(),
            ..Config::default()
        });
        r.supported.set(Ok(())).unwrap();
        r
    }

    fn skip_reason(r: &SocketDestroy, st: &FakeState, port: u16) -> String {
        match r.plan(&finding(Some(9), port, "10.0.0.1", &[]), &ctx(st)) {
            Some(Plan::Skip(why)) => why,
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn destroys_the_orphans_of_an_allowed_port_irreversibly() {
        let mut st = FakeState::default();
        let (a, b) = (sock(80, "fin-wait-2", 0, 5), sock(80, "time-wait", 0, 6));
        st.sockets.insert((Some(9), 80), vec![a.clone(), b.clone()]);
        let r = remedy(&[80]);
        let p = change(&r, &finding(Some(9), 80, "10.0.0.1", &[]), &ctx(&st));
        assert_eq!(
            p.apply,
            Action::all(vec![
                (Action::DestroySocket(a.clone()), Action::Nothing),
                (Action::DestroySocket(b.clone()), Action::Nothing),
            ])
            .0
        );
        assert_eq!(p.inverse, Action::Nothing);
        assert_eq!(
            p.verify,
            Verify::All {
                checks: vec![Verify::SocketGone(a.clone()), Verify::SocketGone(b)]
            }
        );
        assert_eq!(p.targets, ["port:80"]);
        assert_eq!(p.before["orphaned"][0]["state"], "fin-wait-2");
        assert_eq!(p.after["reversible"], false);
        // one socket: no All
        st.sockets.insert((Some(9), 80), vec![a.clone()]);
        let p = change(&r, &finding(Some(9), 80, "10.0.0.1", &[]), &ctx(&st));
        assert_eq!(p.apply, Action::DestroySocket(a.clone()));
        assert_eq!(p.verify, Verify::SocketGone(a.clone()));
        let v = serde_json::to_value(&p.apply).unwrap();
        assert_eq!(v["op"], "destroy_socket");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), p.apply);
    }

    #[test]
    fn policy_owners_and_support_gate_it() {
        let mut st = FakeState::default();
        st.sockets
            .insert((Some(9), 80), vec![sock(80, "fin-wait-2", 0, 5)]);
        st.sockets.insert(
            (Some(9), 81),
            vec![sock(81, "fin-wait-2", 0, 5), sock(81, "listen", 44, 6)],
        );
        st.sockets.insert((Some(9), 82), vec![]);
        assert_eq!(
            skip_reason(&SocketDestroy::default(), &st, 80),
            "port 80 is not in remedies.socket_destroy.allow_ports"
        );
        let r = remedy(&[80, 81, 82, 83]);
        let why = skip_reason(&r, &st, 81);
        assert!(why.contains("listen, inode 44"), "{why}");
        assert!(skip_reason(&r, &st, 82).contains("any more"));
        assert!(skip_reason(&r, &st, 83).contains("cannot read"));
        let no = SocketDestroy::new(Config {
            allow_ports: vec![80],
            max_sockets: 1,
        });
        no.supported.set(Err("no DESTROY".into())).unwrap();
        assert_eq!(skip_reason(&no, &st, 80), "no DESTROY");
        let few = remedy(&[80]);
        st.sockets.insert(
            (Some(9), 80),
            vec![sock(80, "time-wait", 0, 1), sock(80, "time-wait", 0, 2)],
        );
        let few = SocketDestroy {
            cfg: Config {
                max_sockets: 1,
                ..few.cfg.clone()
            },
            ..few
        };
        assert!(skip_reason(&few, &st, 80).contains("max_sockets = 1"));
    }
}
