//! Before a journaled inverse is run (recovery at start, `guardian rollback`, the control
//! socket's `rollback`), it is checked again as if it were a new plan: it must be an undo its
//! remedy can journal, in this network namespace (never `netns: 0`), and pass the safety rules
//! (protected interfaces, the default route's interface, protected routes and ports). The
//! journal is authenticated (journal/auth.rs); this is the second line (docs/security.md).
use std::collections::HashMap;

use super::safety::{self, Host, SafetyConfig};
use crate::journal::Record;
use crate::model::{RouteDst, Subject, Target};
use crate::remedy::{Action, Effect, Lifetime, PlannedChange, RemedyId, Verify};

/// What the checks need to know about this daemon and host.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// This daemon's network namespace (inode).
    pub own_netns: u32,
    pub safety: SafetyConfig,
    pub host: Host,
    /// Live interface names by index: the kernel acts on the index, so the journal's name
    /// is not trusted.
    pub links: HashMap<u32, String>,
}

/// The ops an undo of `remedy` may contain (flattening `all`).
fn allowed_ops(remedy: RemedyId) -> &'static [&'static str] {
    use RemedyId::*;
    match remedy {
        LinkUp => &["set_link_down"],
        RouteRestore => &["del_route"],
        RouteFailover | RouteDampen | RouteMtu | RouteCc => {
            &["add_route", "del_route", "replace_route"]
        }
        Sysctl => &["set_sysctl"],
        ReportHolder | SocketDestroy => &["nothing"],
        SockoptFailfast => &["failfast_remove"],
        XdpSourceLimit | XdpPortLimit => &["xdp_limit_remove"],
    }
}

fn op(a: &Action) -> &'static str {
    match a {
        Action::SetLinkUp { .. } => "set_link_up",
        Action::SetLinkDown { .. } => "set_link_down",
        Action::AddRoute(_) => "add_route",
        Action::DelRoute(_) => "del_route",
        Action::ReplaceRoute { .. } => "replace_route",
        Action::SetSysctl { .. } => "set_sysctl",
        Action::DestroySocket(_) => "destroy_socket",
        Action::XdpLimitInsert(_) => "xdp_limit_insert",
        Action::XdpLimitRemove { .. } => "xdp_limit_remove",
        Action::All { .. } => "all",
        Action::FailfastInsert(_) => "failfast_insert",
        Action::FailfastRemove(_) => "failfast_remove",
        Action::Nothing => "nothing",
    }
}

/// The single actions of `a` (an `all` flattened).
fn leaves(a: &Action) -> Vec<&Action> {
    match a {
        Action::All { actions, .. } => actions.iter().flat_map(leaves).collect(),
        a => vec![a],
    }
}

impl Guard {
    /// Whether the journaled `inverse` of record `r` may be run here; the reason when not.
    pub fn check(&self, r: &Record, inverse: &Action) -> Result<(), String> {
        if r.netns == 0 {
            return Err("refused: the record names no network namespace (netns 0)".into());
        }
        if r.netns != self.own_netns {
            return Err(format!(
                "refused: the change was made in network namespace {}, not this one ({})",
                r.netns, self.own_netns
            ));
        }
        let remedy: RemedyId = r
            .remedy
            .parse()
            .map_err(|e| format!("refused: {e} in the record"))?;
        let ops = allowed_ops(remedy);
        let mut targets = Vec::new();
        for a in leaves(inverse) {
            let name = op(a);
            if !ops.contains(&name) {
                return Err(format!(
                    "refused: {remedy} never journals an undo that does {name} ({a})"
                ));
            }
            targets.extend(self.targets(a)?);
        }
        if targets.is_empty() {
            // Removing guardian's own XDP/sock_ops entries, or nothing: no one else's state.
            return Ok(());
        }
        let plan = PlannedChange {
            remedy,
            subject: Subject::default(),
            targets,
            apply: inverse.clone(),
            inverse: Action::Nothing,
            verify: Verify::Nothing,
            effect: Effect::InPlace,
            lifetime: Lifetime::Permanent,
            before: r.after.clone(),
            after: r.before.clone(),
        };
        safety::check_plan(&self.safety, &self.host, &plan)
    }

    /// What one undo action touches, as the safety rules name it.
    fn targets(&self, a: &Action) -> Result<Vec<Target>, String> {
        let route =
            |r: &crate::netlink::RouteSpec| Target::Route(RouteDst::new(r.dst, r.prefix_len));
        Ok(match a {
            Action::SetLinkDown { ifindex, .. } | Action::SetLinkUp { ifindex, .. } => {
                let name = self
                    .links
                    .get(ifindex)
                    .ok_or_else(|| format!("refused: no interface with index {ifindex} here"))?;
                vec![Target::Iface(name.clone())]
            }
            Action::AddRoute(r) | Action::DelRoute(r) => vec![route(r)],
            Action::ReplaceRoute { from, to } => vec![route(from), route(to)],
            Action::SetSysctl { netns, key, .. } => {
                if !crate::sysctl::allowed(key) {
                    return Err(format!("refused: sysctl {key} is not one guardian writes"));
                }
                safety::netns_allowed(&self.safety, self.own_netns, *netns)?;
                vec![Target::Sysctl(key.clone())]
            }
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalPhase;

    fn guard() -> Guard {
        let mut host = Host::default();
        host.default_route_interfaces.insert("eth0".into());
        host.managed_interfaces = 2;
        Guard {
            own_netns: 42,
            safety: SafetyConfig::default(),
            host,
            links: HashMap::from([(2, "eth0".into()), (3, "va".into())]),
        }
    }

    fn rec(remedy: &str, netns: u32) -> Record {
        let mut r = crate::journal::tests::record("x", JournalPhase::Applied);
        r.remedy = remedy.into();
        r.netns = netns;
        r
    }

    fn down(ifindex: u32, name: &str) -> Action {
        Action::SetLinkDown {
            ifindex,
            name: name.into(),
        }
    }

    #[test]
    fn the_forged_record_of_the_attack_is_refused_on_every_count() {
        let g = guard();
        // netns 0, as forged
        let e = g.check(&rec("link_up", 0), &down(2, "eth0")).unwrap_err();
        assert!(e.contains("netns 0"), "{e}");
        // another namespace
        let e = g.check(&rec("link_up", 7), &down(3, "va")).unwrap_err();
        assert!(e.contains("namespace 7"), "{e}");
        // the default route's interface, even under another name in the record
        let e = g.check(&rec("link_up", 42), &down(2, "dummy")).unwrap_err();
        assert!(e.contains("eth0 carries the default route"), "{e}");
        // an index that does not exist here
        let e = g.check(&rec("link_up", 42), &down(9, "va")).unwrap_err();
        assert!(e.contains("index 9"), "{e}");
        // an undo its remedy never journals
        let e = g.check(&rec("sysctl", 42), &down(3, "va")).unwrap_err();
        assert!(e.contains("never journals"), "{e}");
        let e = g.check(&rec("nosuch", 42), &down(3, "va")).unwrap_err();
        assert!(e.contains("unknown remedy"), "{e}");
        // the legitimate undo of link_up on a managed interface passes
        g.check(&rec("link_up", 42), &down(3, "va")).unwrap();
    }

    #[test]
    fn sysctls_routes_and_guardians_own_maps() {
        let g = guard();
        let set = |key: &str, netns| Action::SetSysctl {
            netns,
            key: key.into(),
            value: "1".into(),
        };
        g.check(&rec("sysctl", 42), &set("net.ipv4.tcp_tw_reuse", None))
            .unwrap();
        let e = g
            .check(&rec("sysctl", 42), &set("kernel.core_pattern", None))
            .unwrap_err();
        assert!(e.contains("not one guardian writes"), "{e}");
        let e = g
            .check(&rec("sysctl", 42), &set("net.ipv4.tcp_tw_reuse", Some(9)))
            .unwrap_err();
        assert!(e.contains("outside safety.namespaces"), "{e}");
        let r = crate::netlink::RouteSpec::new("10.9.0.0".parse().unwrap(), 24);
        g.check(&rec("route_restore", 42), &Action::DelRoute(r.clone()))
            .unwrap();
        let mut g2 = guard();
        g2.safety.protected_routes = vec!["10.0.0.0/8".into()];
        let e = g2
            .check(&rec("route_restore", 42), &Action::DelRoute(r))
            .unwrap_err();
        assert!(e.contains("protected"), "{e}");
        let nothing = Action::Nothing;
        g.check(&rec("report_holder", 42), &nothing).unwrap();
        let (_, inverse) = Action::all(vec![(Action::Nothing, down(2, "eth0"))]);
        let e = g.check(&rec("link_up", 42), &inverse).unwrap_err();
        assert!(e.contains("default route"), "{e}");
    }
}
