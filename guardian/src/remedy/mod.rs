//! Remedies: data first. A remedy looks at a [`Finding`](crate::faults::Finding) and plans a [`PlannedChange`]: the
//! action to apply, its exact inverse, how to tell the change is in place ([`Verify`]), how to
//! tell it helped ([`Effect`]) and how long it lives ([`Lifetime`]). The engine decides
//! whether and when to apply it (mode, budgets, blast radius, protected subjects, ladder),
//! journals it first, verifies, rolls back and expires it.
//!
//! Planning is pure: everything a remedy needs to know about the kernel's current state comes
//! through [`PlanContext`], so every planning decision is a unit test without a kernel.
pub mod action;
pub mod config;
mod context;
mod error;
pub mod exec;
mod failfast_policy;
pub mod holders;
pub mod id;
pub mod kernel;
pub mod link_up;
mod plan;
pub mod report_holder;
pub mod route_cc;
pub mod route_dampen;
pub mod route_failover;
pub mod route_mtu;
pub mod route_restore;
pub mod routing;
pub mod socket_destroy;
pub mod sockopt_failfast;
pub mod sysctl;
pub mod xdp_limit;
pub mod xdp_port_limit;
pub mod xdp_source_limit;

pub use action::{Action, Verify};
pub use config::{RemedyConfig, RemedyMode};
pub use context::{PlanContext, Remedy, StateReader};
pub use error::RemedyError;
pub use id::{RemedyId, UnknownRemedy};
pub use kernel::{Kernel, Maps};
pub use link_up::LinkUp;
pub use plan::{Effect, Lifetime, MibCounter, Plan, PlannedChange};
pub use report_holder::ReportHolder;
pub use route_cc::RouteCc;
pub use route_dampen::RouteDampen;
pub use route_failover::RouteFailover;
pub use route_mtu::RouteMtu;
pub use route_restore::RouteRestore;
pub use socket_destroy::SocketDestroy;
pub use sockopt_failfast::SockoptFailfast;
pub use sysctl::Sysctl;
pub use xdp_port_limit::XdpPortLimit;
pub use xdp_source_limit::XdpSourceLimit;

/// Every remedy, configured.
pub fn all(cfg: &RemedyConfig, keep_up: &[String]) -> Vec<Box<dyn Remedy>> {
    // Route changes and the XDP program are in the daemon's own namespace.
    let own = routing::own_netns();
    let xdp_netns = own;
    let every: Vec<Box<dyn Remedy>> = vec![
        Box::new(LinkUp::new(keep_up.iter().cloned())),
        Box::new(RouteRestore::new()),
        Box::new(RouteFailover::new(cfg.route_failover.clone(), own)),
        Box::new(RouteDampen::new(cfg.route_dampen.clone())),
        Box::new(RouteMtu::new(cfg.route_mtu.clone(), own)),
        Box::new(RouteCc::new(cfg.route_cc.clone(), own)),
        Box::new(Sysctl::new(cfg.sysctl.clone())),
        Box::new(ReportHolder::new()),
        Box::new(SocketDestroy::new(cfg.socket_destroy.clone())),
        Box::new(SockoptFailfast::new(cfg.sockopt_failfast.clone())),
        Box::new(XdpSourceLimit::new(cfg.xdp_source_limit.clone(), xdp_netns)),
        Box::new(XdpPortLimit::new(cfg.xdp_port_limit.clone(), xdp_netns)),
    ];
    every
        .into_iter()
        .filter(|r| cfg.mode_of(r.name().as_str()) != RemedyMode::Off)
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Planning helpers shared by the remedies' unit tests.
    use std::collections::HashMap;

    use super::*;
    use crate::faults::Finding;

    /// A fake kernel state for planning tests.
    #[derive(Default)]
    pub struct FakeState {
        pub sysctls: HashMap<(Option<u32>, String), String>,
        /// Sockets per (namespace, local port); a port absent here cannot be read.
        pub sockets: HashMap<(Option<u32>, u16), Vec<holders::SocketRef>>,
        pub owners: HashMap<u32, Vec<holders::Owner>>,
        /// Listening ports per namespace; absent: none.
        pub listening: HashMap<Option<u32>, Vec<u16>>,
    }

    impl FakeState {
        pub fn with_sysctl(mut self, netns: Option<u32>, key: &str, value: &str) -> Self {
            self.sysctls
                .insert((netns, key.to_string()), value.to_string());
            self
        }
    }

    impl StateReader for FakeState {
        fn sysctl(&self, netns: Option<u32>, key: &str) -> Option<String> {
            self.sysctls.get(&(netns, key.to_string())).cloned()
        }

        fn tcp_sockets(&self, netns: Option<u32>, port: u16) -> Option<Vec<holders::SocketRef>> {
            self.sockets.get(&(netns, port)).cloned()
        }

        fn listening_ports(&self, netns: Option<u32>) -> Option<Vec<u16>> {
            Some(self.listening.get(&netns).cloned().unwrap_or_default())
        }

        fn socket_owners(&self, inodes: &[u32]) -> HashMap<u32, Vec<holders::Owner>> {
            inodes
                .iter()
                .filter_map(|i| Some((*i, self.owners.get(i)?.clone())))
                .collect()
        }
    }

    /// A context with no links or routes, over `state`.
    pub fn ctx(state: &FakeState) -> PlanContext<'_> {
        PlanContext {
            links: &[],
            routes: &[],
            baseline: &[],
            state,
            recurrences: 0,
        }
    }

    /// Plans and unwraps a change (panics on skip or no plan, naming what came back).
    pub fn change(r: &dyn Remedy, f: &Finding, ctx: &PlanContext<'_>) -> PlannedChange {
        match r.plan(f, ctx) {
            Some(Plan::Change(c)) => *c,
            other => panic!("{} planned {other:?} for {}", r.name(), f.fault),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeState;
    use super::*;
    use crate::faults::FaultId;

    #[test]
    fn lifetimes_bound_what_they_should() {
        assert_eq!(Lifetime::Permanent.max_ms(), None);
        assert_eq!(Lifetime::Ttl { ms: 5 }.max_ms(), Some(5));
        assert_eq!(Lifetime::UntilClear { max_ms: 7 }.max_ms(), Some(7));
    }

    #[test]
    fn fake_state_answers_per_namespace() {
        let s = FakeState::default().with_sysctl(Some(9), "net.ipv4.tcp_tw_reuse", "2");
        assert_eq!(
            s.sysctl(Some(9), "net.ipv4.tcp_tw_reuse").as_deref(),
            Some("2")
        );
        assert_eq!(s.sysctl(None, "net.ipv4.tcp_tw_reuse"), None);
    }

    #[test]
    fn remedy_ids_are_the_remedies_in_ladder_order() {
        let ids: Vec<RemedyId> = all(&RemedyConfig::default(), &[])
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(ids, RemedyId::ALL);
        for id in RemedyId::ALL {
            assert_eq!(serde_json::to_value(id).unwrap(), id.as_str());
        }
    }

    #[test]
    fn the_event_schema_lists_exactly_the_remedies() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/schema/events.schema.json")).unwrap();
        let listed: Vec<&str> = schema["$defs"]["remedy_name"]["enum"]
            .as_array()
            .expect("docs/schema/events.schema.json: $defs.remedy_name.enum")
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect();
        let ids: Vec<&str> = RemedyId::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            listed, ids,
            "docs/schema/events.schema.json's remedy_name must list RemedyId::ALL, in its order"
        );
    }

    #[test]
    fn remedies_switched_off_are_not_on_any_ladder() {
        let mut cfg = RemedyConfig::default();
        assert_eq!(all(&cfg, &[]).len(), 12);
        cfg.modes.insert("link_up".into(), RemedyMode::Off);
        let names: Vec<_> = all(&cfg, &[]).iter().map(|r| r.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "route_restore",
                "route_failover",
                "route_dampen",
                "route_mtu",
                "route_cc",
                "sysctl",
                "report_holder",
                "socket_destroy",
                "sockopt_failfast",
                "xdp_source_limit",
                "xdp_port_limit"
            ]
        );
    }

    #[test]
    fn ladders_are_in_order_and_route_tables_read_from_toml() {
        let cfg: RemedyConfig = toml::from_str(
            "[route_failover]\nbackups = [{ prefix = \"default\", via = \"10.0.0.1\" }]\n\
             [route_dampen]\nhold_ms = 1000\n[route_mtu]\nmtu_ipv4 = 1280\n\
             [route_cc]\nalgo = \"reno\"\n",
        )
        .unwrap();
        assert_eq!(cfg.route_dampen.hold_ms, 1000);
        assert_eq!(cfg.route_cc.algo, "reno");
        let ladder = |fault: FaultId| -> Vec<&'static str> {
            all(&cfg, &[])
                .iter()
                .filter(|r| r.faults().contains(&fault))
                .map(|r| r.name().as_str())
                .collect()
        };
        assert_eq!(ladder(FaultId::LinkDown), ["link_up", "route_failover"]);
        assert_eq!(ladder(FaultId::LinkFlapping), ["route_dampen"]);
        assert_eq!(ladder(FaultId::MtuBlackhole), ["route_mtu", "sysctl"]);
        assert_eq!(
            ladder(FaultId::RetransmitStorm),
            ["route_failover", "route_cc"]
        );
    }
}
