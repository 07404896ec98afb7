//! `sysctl`: moves the namespace's TCP sysctls that a socket fault points at to configured
//! targets, in exactly the fault's namespace (`Finding.netns`), changing only the keys that
//! are not there yet (several at once as one [`Action::All`]). The inverse writes back the
//! values read at planning time. Only keys on [`crate::sysctl::ALLOWED`] are ever written.
//!
//! Per fault:
//! - `time_wait_exhaustion` toward one destination: `tcp_tw_reuse` and a wider
//!   `ip_local_port_range` (the range is what the crowding is measured against). For the
//!   bucket table (`tcp_max_tw_buckets`, not on the allow-list): `tcp_tw_reuse` only. Effect:
//!   the incident clears.
//! - `ephemeral_port_exhaustion`: a wider `ip_local_port_range` plus `tcp_tw_reuse`. Effect:
//!   the incident clears.
//! - `syn_flood`: `tcp_syncookies = 1` when it is 0. Without cookies a full SYN queue drops
//!   each new SYN and counts `TCPReqQFullDrop` (and `ListenDrops`); with cookies it answers
//!   with a cookie instead (`TCPReqQFullDoCookies`), so the effect is `ReqQFullDrop` going
//!   quiet. `tcp_max_syn_backlog` is left alone: the kernel only consults it when cookies are
//!   off. Cookies already on: skipped (the XDP limits are the next rungs).
//! - `accept_backlog_overflow`: raises `net.core.somaxconn` and `tcp_max_syn_backlog`. The
//!   accept queue limit is `min(backlog, somaxconn)` fixed at `listen(2)`: the change takes
//!   effect when the listener listens again (said in `after.takes_effect`). Skipped when the
//!   listener's limit is already below `somaxconn` (its own backlog is what limits it).
//!   Effect: `ListenOverflows` stops growing.
//! - `mtu_blackhole`: `tcp_mtu_probing = 1` when it is 0 (a rung after `route_mtu`).
//!
//! `tcp_tw_reuse`: 0 off, 1 on, 2 (the kernel default) on for loopback traffic only. 2 counts
//! as done only when the crowded destination is a loopback address.
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, MibCounter, Plan, PlannedChange};
use crate::faults::{
    accept_backlog_overflow, ephemeral_port_exhaustion, mtu_blackhole, syn_flood,
    time_wait_exhaustion, Evidence, FaultId, Finding,
};

pub const NAME: RemedyId = RemedyId::Sysctl;

pub const TW_REUSE: &str = "net.ipv4.tcp_tw_reuse";
pub const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
pub const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
pub const SOMAXCONN: &str = "net.core.somaxconn";
pub const SYN_BACKLOG: &str = "net.ipv4.tcp_max_syn_backlog";
pub const MTU_PROBING: &str = "net.ipv4.tcp_mtu_probing";

/// `[remedies.sysctl]`: the value each key is moved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `net.ipv4.tcp_tw_reuse`: 1 lets new outgoing connections take a port whose TIME_WAIT
    /// socket toward the same destination is over a second old (needs TCP timestamps).
    pub tcp_tw_reuse: u8,
    /// `net.ipv4.ip_local_port_range` `[low, high]`. Only ever widens: the result is
    /// `[min(low, current low), max(high, current high)]`. Ports in `ip_local_reserved_ports`
    /// stay excluded by the kernel (guardian never changes that list). Low and high of
    /// different parity, as the kernel prefers.
    pub ip_local_port_range: [u16; 2],
    /// `net.ipv4.tcp_syncookies` when it is 0 (1: cookies when the SYN queue is full).
    pub tcp_syncookies: u8,
    /// `net.core.somaxconn` at least this (only raised).
    pub somaxconn: u32,
    /// `net.ipv4.tcp_max_syn_backlog` at least this (only raised).
    pub tcp_max_syn_backlog: u32,
    /// `net.ipv4.tcp_mtu_probing` when it is 0 (1: probe after a black hole is detected).
    pub tcp_mtu_probing: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp_tw_reuse: 1,
            ip_local_port_range: [10000, 64999],
            tcp_syncookies: 1,
            somaxconn: 16384,
            tcp_max_syn_backlog: 16384,
            tcp_mtu_probing: 1,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Sysctl {
    cfg: Config,
}

/// One key to change, from `old` to `new`.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    key: &'static str,
    old: String,
    new: String,
}

/// Where a key stands: `Err` = unreadable, `Ok((current, None))` = at its target.
type Step = Result<(String, Option<String>), String>;

/// Ports the kernel never hands out as ephemeral, e.g. `8080,9000-9100`.
pub const RESERVED_PORTS: &str = "net.ipv4.ip_local_reserved_ports";

/// `ip_local_reserved_ports`' list (empty: none); None when it does not parse.
pub(crate) fn parse_port_list(s: &str) -> Option<Vec<std::ops::RangeInclusive<u16>>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => Some(a.trim().parse().ok()?..=b.trim().parse().ok()?),
            None => {
                let n = p.parse().ok()?;
                Some(n..=n)
            }
        })
        .collect()
}

/// `cur` widened toward `target`, each end stopping just before the first port `blocked`
/// (listened on or reserved) that the extension would cover. Never narrows.
pub(crate) fn widen(
    cur: (u16, u16),
    target: (u16, u16),
    blocked: impl Fn(u16) -> bool,
) -> (u16, u16) {
    let (lo, hi) = cur;
    let mut nlo = lo;
    while nlo > target.0 && !blocked(nlo - 1) {
        nlo -= 1;
    }
    let mut nhi = hi;
    while nhi < target.1 && !blocked(nhi + 1) {
        nhi += 1;
    }
    (nlo, nhi)
}

impl Sysctl {
    pub fn new(cfg: Config) -> Self {
        Sysctl { cfg }
    }

    fn read(f: &Finding, ctx: &PlanContext<'_>, key: &'static str) -> Result<String, String> {
        ctx.state.sysctl(f.netns, key).ok_or_else(|| match f.netns {
            Some(n) => format!("cannot read {key} in network namespace {n}"),
            None => format!("cannot read {key}"),
        })
    }

    fn tw_reuse(&self, f: &Finding, ctx: &PlanContext<'_>) -> Step {
        let cur = Self::read(f, ctx, TW_REUSE)?;
        let loopback = f
            .subject
            .addr
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .is_some_and(|a| a.is_loopback());
        let target = self.cfg.tcp_tw_reuse.to_string();
        let done = cur == target || cur == "1" || (cur == "2" && loopback);
        Ok((cur, (!done).then_some(target)))
    }

    /// The configured range, widened only as far as no port that a local service listens on
    /// or reserves (`ip_local_reserved_ports`) falls into the part added.
    fn port_range(&self, f: &Finding, ctx: &PlanContext<'_>) -> Step {
        let cur = Self::read(f, ctx, PORT_RANGE)?;
        let mut it = cur.split(' ').map(str::parse::<u16>);
        let (Some(Ok(lo)), Some(Ok(hi)), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("{PORT_RANGE} reads {cur:?}, not two ports"));
        };
        let listening = ctx.state.listening_ports(f.netns).ok_or_else(|| {
            "cannot list the listening ports (a widened range must not cover them)".to_string()
        })?;
        let reserved = ctx
            .state
            .sysctl(f.netns, RESERVED_PORTS)
            .unwrap_or_default();
        let reserved = parse_port_list(&reserved)
            .ok_or_else(|| format!("{RESERVED_PORTS} reads {reserved:?}, not a port list"))?;
        let (nlo, nhi) = widen(
            (lo, hi),
            (
                self.cfg.ip_local_port_range[0],
                self.cfg.ip_local_port_range[1],
            ),
            |p| listening.binary_search(&p).is_ok() || reserved.iter().any(|r| r.contains(&p)),
        );
        let wide = format!("{nlo} {nhi}");
        let new = (wide != cur).then_some(wide);
        Ok((cur, new))
    }

    /// At least `target` (numeric keys that are only ever raised).
    fn raise(f: &Finding, ctx: &PlanContext<'_>, key: &'static str, target: u32) -> Step {
        let cur = Self::read(f, ctx, key)?;
        let n: u64 = cur
            .parse()
            .map_err(|_| format!("{key} reads {cur:?}, not a number"))?;
        Ok((cur, (n < u64::from(target)).then(|| target.to_string())))
    }

    /// `target` when the key is 0 (switches whose non-zero values all count as on).
    fn enable(f: &Finding, ctx: &PlanContext<'_>, key: &'static str, target: u8) -> Step {
        let cur = Self::read(f, ctx, key)?;
        Ok((cur.clone(), (cur == "0").then(|| target.to_string())))
    }
}

impl Remedy for Sysctl {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[
            time_wait_exhaustion::FAULT,
            ephemeral_port_exhaustion::FAULT,
            syn_flood::FAULT,
            accept_backlog_overflow::FAULT,
            mtu_blackhole::FAULT,
        ]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        let c = &self.cfg;
        let mut note = None;
        let (steps, effect): (Vec<(&'static str, Step)>, Effect) = match f.fault {
            time_wait_exhaustion::FAULT if f.subject.addr.is_none() => {
                (vec![(TW_REUSE, self.tw_reuse(f, ctx))], Effect::Clears)
            }
            time_wait_exhaustion::FAULT | ephemeral_port_exhaustion::FAULT => (
                vec![
                    (PORT_RANGE, self.port_range(f, ctx)),
                    (TW_REUSE, self.tw_reuse(f, ctx)),
                ],
                Effect::Clears,
            ),
            syn_flood::FAULT => (
                vec![(
                    SYNCOOKIES,
                    Self::enable(f, ctx, SYNCOOKIES, c.tcp_syncookies),
                )],
                Effect::CounterQuiet {
                    counter: MibCounter::ReqQFullDrop,
                },
            ),
            accept_backlog_overflow::FAULT => {
                let somaxconn = match Self::read(f, ctx, SOMAXCONN) {
                    Ok(v) => v.parse::<u64>().ok(),
                    Err(e) => return Some(Plan::Skip(e)),
                };
                let l = match &f.evidence {
                    Evidence::AcceptBacklogOverflow(e) => e.listener.as_ref(),
                    _ => None,
                };
                if let (Some(l), Some(s)) = (l, somaxconn) {
                    let b = u64::from(l.backlog);
                    if b < s {
                        return Some(Plan::Skip(format!(
                            "the listener on {}:{} has an accept queue limit of {b}, below \
                             {SOMAXCONN} = {s}: its own listen(2) backlog limits it, not the sysctl",
                            l.addr, l.port
                        )));
                    }
                }
                note = Some(
                    "takes effect when the listener calls listen(2) again: the accept queue \
                     limit is min(backlog, somaxconn), fixed at listen time",
                );
                (
                    vec![
                        (SOMAXCONN, Self::raise(f, ctx, SOMAXCONN, c.somaxconn)),
                        (
                            SYN_BACKLOG,
                            Self::raise(f, ctx, SYN_BACKLOG, c.tcp_max_syn_backlog),
                        ),
                    ],
                    Effect::CounterQuiet {
                        counter: MibCounter::ListenOverflows,
                    },
                )
            }
            mtu_blackhole::FAULT => (
                vec![(
                    MTU_PROBING,
                    Self::enable(f, ctx, MTU_PROBING, c.tcp_mtu_probing),
                )],
                Effect::Clears,
            ),
            _ => return None,
        };
        let mut wants = Vec::new();
        let mut current = Vec::new();
        for (key, step) in steps {
            match step {
                Err(e) => return Some(Plan::Skip(e)),
                Ok((cur, None)) => current.push(format!("{key} = {cur}")),
                Ok((old, Some(new))) => wants.push(Want { key, old, new }),
            }
        }
        if wants.is_empty() {
            return Some(Plan::Skip(format!(
                "already at the targets: {}",
                current.join(", ")
            )));
        }
        Some(Plan::Change(Box::new(self.change(f, wants, effect, note))))
    }
}

impl Sysctl {
    fn change(
        &self,
        f: &Finding,
        wants: Vec<Want>,
        effect: Effect,
        note: Option<&str>,
    ) -> PlannedChange {
        let set = |key: &str, value: &str| Action::SetSysctl {
            netns: f.netns,
            key: key.to_string(),
            value: value.to_string(),
        };
        let check = |w: &Want| Verify::Sysctl {
            netns: f.netns,
            key: w.key.to_string(),
            value: w.new.clone(),
        };
        let (apply, inverse, verify) = if let [w] = wants.as_slice() {
            (set(w.key, &w.new), set(w.key, &w.old), check(w))
        } else {
            let (a, i) = Action::all(
                wants
                    .iter()
                    .map(|w| (set(w.key, &w.new), set(w.key, &w.old)))
                    .collect(),
            );
            let checks = wants.iter().map(check).collect();
            (a, i, Verify::All { checks })
        };
        let map = |v: fn(&Want) -> &String| -> Value {
            Value::Object(
                wants
                    .iter()
                    .map(|w| (w.key.to_string(), Value::String(v(w).clone())))
                    .collect::<Map<_, _>>(),
            )
        };
        let mut after = json!({"netns": f.netns, "sysctl": map(|w| &w.new)});
        if let Some(n) = note {
            after["takes_effect"] = json!(n);
        }
        PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: wants
                .iter()
                .map(|w| crate::model::Target::Sysctl(w.key.into()))
                .collect(),
            apply,
            inverse,
            verify,
            effect,
            lifetime: Lifetime::Permanent,
            before: json!({"netns": f.netns, "sysctl": map(|w| &w.old)}),
            after,
        }
    }
}

#[cfg(test)]
#[path = "sysctl_tests.rs"]
mod tests;
