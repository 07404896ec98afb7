//! The safety rules that belong to no single remedy (`../docs/remedies.md`, "Safety"):
//! protected subjects, blast radius, and budgets with cooldowns. Pure: the engine passes the
//! clock and what it knows about the host; every rule is a unit test.
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::model::{RouteDst, Target};
use crate::remedy::{PlannedChange, RemedyId};

/// `[safety]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    /// Interfaces no remedy touches (loopback always is).
    pub protected_interfaces: Vec<String>,
    /// Protect the interface(s) carrying the default route (the management path).
    pub protect_default_route_interface: bool,
    /// Ports no remedy touches (limits, socket destruction), e.g. SSH.
    pub protected_ports: Vec<u16>,
    /// Route prefixes no remedy changes (`10.0.0.0/8`, `default`). `route_restore` adding a
    /// lost route back is not a change to a protected route and is allowed.
    pub protected_routes: Vec<String>,
    /// Sources no XDP limit ever applies to: addresses, prefixes (`192.0.2.0/24`) and the
    /// keywords `gateways`, `resolvers`, `local`, `handshaking` (see `peers.rs`). Removing
    /// `handshaking` lets the limits act on sources that complete their handshakes (a load
    /// balancer, a busy client): a deliberate choice, see docs/security.md.
    pub protected_sources: Vec<String>,
    /// Most targets one change may touch.
    pub max_targets: usize,
    /// Most of the managed interfaces one change may touch, as a fraction.
    pub max_interface_fraction: f64,
    /// Actions of one remedy on one subject within `window_s`.
    pub per_subject_max: u32,
    /// Seconds after an action on a subject before the same remedy acts on it again.
    pub per_subject_cooldown_s: u64,
    /// Actions of one remedy (all subjects) within `window_s`.
    pub per_remedy_max: u32,
    /// The budget window, seconds.
    pub window_s: u64,
    /// Actions of all remedies per hour, except the layer 2/3 repairs (below). Report-only
    /// remedies never count.
    pub global_max_per_hour: u32,
    /// The reserved pool of the layer 2/3 repairs (`link_up`, `route_restore`) per hour:
    /// mitigations that an outsider can provoke (floods, failed binds) cannot use it up.
    pub repair_max_per_hour: u32,
    /// Milliseconds a change has to show its effect (`Clears`, `CounterQuiet`) before it is
    /// rolled back.
    pub effect_timeout_ms: u64,
    /// Below this smoothed success rate (after `min_attempts`), a remedy is only planned,
    /// never applied.
    pub min_confidence: f64,
    /// Attempts before `min_confidence` applies.
    pub min_attempts: u32,
    /// On SIGTERM, revert temporary mitigations (TTL and until-clear changes).
    pub revert_on_shutdown: bool,
    /// Which network namespaces guardian may change: `"own"` (the daemon's, the default),
    /// `"all"` (every namespace it watches: containers, pods), or a list of names under
    /// /run/netns or paths to namespace files.
    pub namespaces: NetnsScope,
}

/// Where remedies may act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetnsScope {
    Keyword(ScopeKeyword),
    Named(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKeyword {
    Own,
    All,
}

impl Default for NetnsScope {
    fn default() -> Self {
        NetnsScope::Keyword(ScopeKeyword::Own)
    }
}

/// Whether a fault in namespace `netns` (None or `own`: the daemon's) may be remedied.
pub fn netns_allowed(cfg: &SafetyConfig, own: u32, netns: Option<u32>) -> Result<(), String> {
    let Some(ns) = netns.filter(|n| *n != own) else {
        return Ok(());
    };
    let ok = match &cfg.namespaces {
        NetnsScope::Keyword(ScopeKeyword::All) => true,
        NetnsScope::Keyword(ScopeKeyword::Own) => false,
        NetnsScope::Named(names) => names.iter().any(|n| {
            let path = if n.starts_with('/') {
                std::path::PathBuf::from(n)
            } else {
                std::path::Path::new("/run/netns").join(n)
            };
            crate::netns::inode(&path).ok() == Some(ns)
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "refused: the fault is in network namespace {ns}, outside safety.namespaces"
        ))
    }
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            protected_interfaces: Vec::new(),
            protect_default_route_interface: true,
            protected_ports: vec![22],
            protected_routes: Vec::new(),
            protected_sources: super::peers::KEYWORDS.map(String::from).to_vec(),
            max_targets: 16,
            max_interface_fraction: 0.5,
            per_subject_max: 3,
            per_subject_cooldown_s: 30,
            per_remedy_max: 10,
            window_s: 3600,
            global_max_per_hour: 30,
            repair_max_per_hour: 30,
            effect_timeout_ms: 30_000,
            min_confidence: 0.2,
            min_attempts: 5,
            revert_on_shutdown: true,
            namespaces: NetnsScope::default(),
        }
    }
}

impl SafetyConfig {
    /// Every value makes sense (fractions in range, windows non-zero).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_interface_fraction) {
            return Err(
                "safety.max_interface_fraction: expected a fraction between 0 and 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err("safety.min_confidence: expected a fraction between 0 and 1".into());
        }
        if self.window_s == 0 {
            return Err("safety.window_s: expected at least 1 second".into());
        }
        if self.max_targets == 0 {
            return Err("safety.max_targets: expected at least 1".into());
        }
        for r in &self.protected_routes {
            if r != "default" && r.parse::<ipnet::IpNet>().is_err() {
                return Err(format!(
                    "safety.protected_routes: {r:?} is not a prefix like 10.0.0.0/8 or \"default\""
                ));
            }
        }
        for s in &self.protected_sources {
            super::peers::parse_entry(s)?;
        }
        Ok(())
    }
}

/// What the engine knows about the host when it checks a plan.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Interfaces carrying a default route.
    pub default_route_interfaces: BTreeSet<String>,
    /// Interfaces guardian manages (keep-up, XDP): the base of the fraction rule.
    pub managed_interfaces: usize,
    /// `safety.protected_sources` as it stands now.
    pub protected_sources: super::peers::Protected,
}

/// Refuses a plan that touches nothing, everything, too much, or something protected.
/// Returns the reason for the `skipped` event.
pub fn check_plan(cfg: &SafetyConfig, host: &Host, plan: &PlannedChange) -> Result<(), String> {
    if plan.targets.is_empty() {
        return Err("refused: the change has an empty target set".into());
    }
    if plan.targets.len() > cfg.max_targets {
        return Err(format!(
            "refused: the change touches {} targets, more than safety.max_targets = {}",
            plan.targets.len(),
            cfg.max_targets
        ));
    }
    let mut ifaces = 0;
    for t in &plan.targets {
        if means_all(t) {
            return Err(format!("refused: target {t} means \"all\""));
        }
        match t {
            Target::Iface(name) => {
                ifaces += 1;
                if name == "lo" || cfg.protected_interfaces.iter().any(|p| p == name) {
                    return Err(format!("refused: interface {name} is protected"));
                }
                if cfg.protect_default_route_interface
                    && host.default_route_interfaces.contains(name)
                {
                    return Err(format!(
                        "refused: interface {name} carries the default route (set safety.protect_default_route_interface = false to allow)"
                    ));
                }
            }
            Target::Port(p) => {
                if cfg.protected_ports.contains(p) {
                    return Err(format!("refused: port {p} is protected"));
                }
            }
            Target::Route(dst) => {
                if let Some(p) = protected_route(cfg, dst) {
                    return Err(format!("refused: route {dst} is protected ({p})"));
                }
            }
            // Adding a lost route back is not a change to a protected route.
            Target::RestoreRoute { .. } => {}
            Target::Src(addr) => {
                if let Some(why) = host.protected_sources.why(*addr) {
                    return Err(format!(
                        "refused: source {addr} is protected ({why}; safety.protected_sources)"
                    ));
                }
            }
            // No rule protects these beyond wildcards and blast radius.
            Target::Sysctl(_) | Target::Dst(_) => {}
        }
    }
    if ifaces > 1 && host.managed_interfaces > 0 {
        let frac = ifaces as f64 / host.managed_interfaces as f64;
        if frac > cfg.max_interface_fraction {
            return Err(format!(
                "refused: the change touches {ifaces} of {} managed interfaces, more than safety.max_interface_fraction = {}",
                host.managed_interfaces, cfg.max_interface_fraction
            ));
        }
    }
    Ok(())
}

/// The target stands for "everything" of its kind: a wildcard name, an unspecified
/// address, port 0, or a prefix of length 0.
fn means_all(t: &Target) -> bool {
    let any_name = |n: &str| matches!(n, "" | "*" | "all" | "any");
    let route = |d: &RouteDst| match d {
        RouteDst::Default => false,
        RouteDst::Prefix { prefix_len, .. } => *prefix_len == 0,
    };
    match t {
        Target::Iface(name) | Target::Sysctl(name) => any_name(name),
        Target::Route(dst) => route(dst),
        Target::RestoreRoute { dst, key } => route(dst) || any_name(key),
        Target::Src(addr) | Target::Dst(addr) => addr.is_unspecified(),
        Target::Port(port) => *port == 0,
    }
}

/// The protected prefix covering `route`, if any. A prefix that is not valid for its family
/// counts as covered by every protected prefix (refused rather than let through).
fn protected_route<'a>(cfg: &'a SafetyConfig, route: &RouteDst) -> Option<&'a str> {
    let net = route.net();
    cfg.protected_routes
        .iter()
        .find(|p| {
            if p.as_str() == "default" {
                return *route == RouteDst::Default || net.is_some_and(|n| n.prefix_len() == 0);
            }
            match (p.parse::<ipnet::IpNet>(), route, net) {
                (Ok(p), _, Some(n)) => p.contains(&n),
                (_, RouteDst::Prefix { .. }, None) => true,
                _ => false,
            }
        })
        .map(String::as_str)
}

/// The layer 2/3 repairs, budgeted in their own pool (`safety.repair_max_per_hour`).
pub fn is_repair(remedy: RemedyId) -> bool {
    matches!(remedy, RemedyId::LinkUp | RemedyId::RouteRestore)
}

/// Actions taken, for budgets and cooldowns.
#[derive(Debug, Default)]
pub struct Budgets {
    taken: VecDeque<(Instant, RemedyId, String)>,
}

impl Budgets {
    /// Whether `remedy` may act on `subject` now; the reason when it may not.
    pub fn check(
        &mut self,
        cfg: &SafetyConfig,
        remedy: RemedyId,
        subject: &str,
        now: Instant,
    ) -> Result<(), String> {
        let keep = Duration::from_secs(cfg.window_s.max(3600));
        while self
            .taken
            .front()
            .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > keep)
        {
            self.taken.pop_front();
        }
        let within = |d: Duration| {
            self.taken
                .iter()
                .filter(move |(t, ..)| now.saturating_duration_since(*t) < d)
        };
        let pool = is_repair(remedy);
        let hour = within(Duration::from_secs(3600))
            .filter(|(_, r, _)| is_repair(*r) == pool)
            .count() as u32;
        let (max, key) = if pool {
            (cfg.repair_max_per_hour, "safety.repair_max_per_hour")
        } else {
            (cfg.global_max_per_hour, "safety.global_max_per_hour")
        };
        if hour >= max {
            return Err(format!(
                "budget exhausted: {hour} actions in the last hour ({key})"
            ));
        }
        let window = Duration::from_secs(cfg.window_s);
        let by_remedy = within(window).filter(|(_, r, _)| *r == remedy).count() as u32;
        if by_remedy >= cfg.per_remedy_max {
            return Err(format!(
                "budget exhausted: {remedy} acted {by_remedy} times in {} s (safety.per_remedy_max)",
                cfg.window_s
            ));
        }
        let on_subject: Vec<Instant> = within(window)
            .filter(|(_, r, s)| *r == remedy && s == subject)
            .map(|(t, ..)| *t)
            .collect();
        if on_subject.len() as u32 >= cfg.per_subject_max {
            return Err(format!(
                "budget exhausted: {remedy} acted on {subject} {} times in {} s (safety.per_subject_max)",
                on_subject.len(),
                cfg.window_s
            ));
        }
        if let Some(last) = on_subject.last() {
            let since = now.saturating_duration_since(*last);
            let cooldown = Duration::from_secs(cfg.per_subject_cooldown_s);
            if since < cooldown {
                return Err(format!(
                    "cooldown: {remedy} acted on {subject} {:.1} s ago (safety.per_subject_cooldown_s = {})",
                    since.as_secs_f64(),
                    cfg.per_subject_cooldown_s
                ));
            }
        }
        Ok(())
    }

    /// Counts an action.
    pub fn record(&mut self, remedy: RemedyId, subject: &str, now: Instant) {
        self.taken.push_back((now, remedy, subject.to_string()));
    }

    /// Every action still remembered: when, which remedy, which subject (for status).
    pub fn taken(&self) -> impl Iterator<Item = (Instant, RemedyId, &str)> + '_ {
        self.taken.iter().map(|(t, r, s)| (*t, *r, s.as_str()))
    }

    /// How many actions the global budget (not the repairs' pool) still allows this hour.
    pub fn global_left(&self, cfg: &SafetyConfig, now: Instant) -> u32 {
        let used = self
            .taken
            .iter()
            .filter(|(_, r, _)| !is_repair(*r))
            .filter(|(t, ..)| now.saturating_duration_since(*t) < Duration::from_secs(3600))
            .count() as u32;
        cfg.global_max_per_hour.saturating_sub(used)
    }
}

#[cfg(test)]
#[path = "safety_tests.rs"]
mod tests;
