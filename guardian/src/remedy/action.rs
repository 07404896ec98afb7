//! The changes remedies make ([`Action`]) and the checks that they are in place ([`Verify`]).
//! Both are serializable: the journal stores them, so a restarted daemon or `guardian
//! rollback` can verify or undo a change without the process that planned it. What each kind
//! does (precondition, execution, verification) is in `remedy/exec/`.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::failfast_policy::{Dst, Policy};
use super::holders::SocketRef;
use crate::netlink::RouteSpec;
use crate::probes::limits::{LimitKey, LimitSpec};

/// One change to the kernel's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    SetLinkUp {
        ifindex: u32,
        name: String,
    },
    SetLinkDown {
        ifindex: u32,
        name: String,
    },
    AddRoute(RouteSpec),
    DelRoute(RouteSpec),
    /// Replaces route `from` by `to` (inverse: the same with `from` and `to` swapped).
    ReplaceRoute {
        from: RouteSpec,
        to: RouteSpec,
    },
    /// Writes an allowed `net.*` sysctl in a namespace (None: the daemon's).
    SetSysctl {
        netns: Option<u32>,
        key: String,
        value: String,
    },
    /// Destroys one TCP socket with INET_DIAG SOCK_DESTROY (irreversible).
    DestroySocket(SocketRef),
    /// Installs (or renews) a SYN limit in guardian's XDP program.
    XdpLimitInsert(LimitSpec),
    /// Deletes a SYN limit (already gone is fine).
    XdpLimitRemove {
        key: LimitKey,
    },
    /// Several actions, applied in order. If one fails, those already applied are undone in
    /// reverse order with `undo` (same length, `undo[i]` inverts `actions[i]`).
    All {
        actions: Vec<Action>,
        undo: Vec<Action>,
    },
    /// Installs a `sockopt_failfast` policy in the sock_ops map.
    FailfastInsert(Policy),
    /// Removes a `sockopt_failfast` policy.
    FailfastRemove(Dst),
    /// Changes nothing: report-only remedies, and the inverse of an irreversible action.
    Nothing,
}

impl Action {
    /// Builds an [`Action::All`] from (action, inverse) pairs, and its inverse (the inverses
    /// in reverse order).
    pub fn all(pairs: Vec<(Action, Action)>) -> (Action, Action) {
        let (actions, undo): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let inverse = Action::All {
            actions: undo.iter().rev().cloned().collect(),
            undo: actions.iter().rev().cloned().collect(),
        };
        (Action::All { actions, undo }, inverse)
    }
}

impl fmt::Display for Action {
    /// In `ip` terms, for logs: `link set va up`, `route add 10.9.0.0/24 via 10.0.0.2 oif 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn route(f: &mut fmt::Formatter<'_>, verb: &str, r: &RouteSpec) -> fmt::Result {
            write!(f, "route {verb} ")?;
            spec(f, r)
        }
        fn spec(f: &mut fmt::Formatter<'_>, r: &RouteSpec) -> fmt::Result {
            write!(f, "{r}")?;
            if let Some(gw) = r.gateway {
                write!(f, " via {gw}")?;
            }
            if let Some(oif) = r.oif {
                write!(f, " oif {oif}")?;
            }
            if let Some(m) = r.priority {
                write!(f, " metric {m}")?;
            }
            if let Some(id) = r.nhid {
                write!(f, " nhid {id}")?;
            }
            for h in &r.nexthops {
                write!(f, " nexthop")?;
                if let Some(gw) = h.gateway {
                    write!(f, " via {gw}")?;
                }
                write!(f, " oif {} weight {}", h.oif, h.weight)?;
            }
            if r.table != crate::netlink::TABLE_MAIN {
                write!(f, " table {}", r.table)?;
            }
            if let Some(mtu) = r.metrics.mtu {
                let lock = if r.metrics.mtu_lock { "lock " } else { "" };
                write!(f, " mtu {lock}{mtu}")?;
            }
            if let Some(cc) = &r.metrics.cc_algo {
                write!(f, " congctl {cc}")?;
            }
            Ok(())
        }
        match self {
            Action::SetLinkUp { name, .. } => write!(f, "link set {name} up"),
            Action::SetLinkDown { name, .. } => write!(f, "link set {name} down"),
            Action::AddRoute(r) => route(f, "add", r),
            Action::DelRoute(r) => route(f, "del", r),
            Action::ReplaceRoute { from, to } => {
                route(f, "replace", to)?;
                f.write_str(" (was ")?;
                spec(f, from)?;
                f.write_str(")")
            }
            Action::SetSysctl { netns, key, value } => {
                write!(f, "sysctl -w {key}=\"{value}\"")?;
                netns.map_or(Ok(()), |n| write!(f, " (netns {n})"))
            }
            Action::DestroySocket(s) => write!(f, "ss -K {s}"),
            Action::XdpLimitInsert(s) => write!(
                f,
                "xdp limit {} {}/s burst {} for {} ms",
                s.key, s.rate_pps, s.burst, s.ttl_ms
            ),
            Action::XdpLimitRemove { key } => write!(f, "xdp unlimit {key}"),
            Action::All { actions, .. } => {
                for (i, a) in actions.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
            Action::FailfastInsert(p) => write!(f, "failfast add {p}"),
            Action::FailfastRemove(d) => write!(f, "failfast del {d}"),
            Action::Nothing => f.write_str("nothing"),
        }
    }
}

/// How to tell that a change is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Verify {
    /// The link is admin up and oper up.
    LinkUp { ifindex: u32 },
    /// The route is in the kernel's table.
    RoutePresent(RouteSpec),
    /// The route is not in the kernel's table.
    RouteAbsent(RouteSpec),
    /// A live `sockopt_failfast` policy with these settings is in the sock_ops map.
    FailfastPresent(Policy),
    /// The kernel's lookup for `dst` answers a unicast route out of `oif` (through `gateway`
    /// when given), and that link is up.
    RouteVia {
        dst: std::net::IpAddr,
        oif: u32,
        #[serde(default)]
        gateway: Option<std::net::IpAddr>,
    },
    /// The sysctl reads `value` in the namespace.
    Sysctl {
        netns: Option<u32>,
        key: String,
        value: String,
    },
    /// The socket is gone: a re-dump of its namespace shows no socket with its cookie.
    SocketGone(SocketRef),
    /// The XDP SYN limit is installed and not expired.
    XdpLimitPresent { key: LimitKey },
    /// Every check holds.
    All { checks: Vec<Verify> },
    /// Nothing to check (report-only remedies).
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_an_op_tag_and_round_trip() {
        let a = Action::SetLinkUp {
            ifindex: 3,
            name: "va".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op": "set_link_up", "ifindex": 3, "name": "va"})
        );
        let r = Action::AddRoute(
            RouteSpec::new("10.9.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap()),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["op"], "add_route");
        assert_eq!(v["dst"], "10.9.0.0");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), r);
        assert_eq!(r.to_string(), "route add 10.9.0.0/24 via 10.0.0.2");
        let ver = Verify::LinkUp { ifindex: 3 };
        assert_eq!(
            serde_json::to_value(&ver).unwrap(),
            serde_json::json!({"check": "link_up", "ifindex": 3})
        );
    }

    #[test]
    fn route_replace_and_route_via_round_trip_and_read_like_ip() {
        let from = RouteSpec::new("10.9.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap());
        let to = from.clone().mtu_lock(1280).congctl("bbr");
        let a = Action::ReplaceRoute {
            from: from.clone(),
            to,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["op"], "replace_route");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), a);
        assert_eq!(
            a.to_string(),
            "route replace 10.9.0.0/24 via 10.0.0.2 mtu lock 1280 congctl bbr \
             (was 10.9.0.0/24 via 10.0.0.2)"
        );
        let ver = Verify::RouteVia {
            dst: "10.9.0.0".parse().unwrap(),
            oif: 4,
            gateway: None,
        };
        let v = serde_json::to_value(&ver).unwrap();
        assert_eq!(v["check"], "route_via");
        assert_eq!(serde_json::from_value::<Verify>(v).unwrap(), ver);
    }

    #[test]
    fn all_inverts_in_reverse_order_and_round_trips() {
        let up = |i: u32| Action::SetLinkUp {
            ifindex: i,
            name: format!("v{i}"),
        };
        let down = |i: u32| Action::SetLinkDown {
            ifindex: i,
            name: format!("v{i}"),
        };
        let (apply, inverse) = Action::all(vec![(up(1), down(1)), (up(2), down(2))]);
        assert_eq!(
            inverse,
            Action::All {
                actions: vec![down(2), down(1)],
                undo: vec![up(2), up(1)],
            }
        );
        assert_eq!(apply.to_string(), "link set v1 up; link set v2 up");
        let v = serde_json::to_value(&apply).unwrap();
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), apply);
    }
}
