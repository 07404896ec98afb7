//! `xdp_port_limit`: a SYN token bucket on the flooded port in guardian's XDP program, for
//! `syn_flood` from many (typically spoofed) sources, with a TTL (inverse: delete the entry).
//!
//! Sources that completed a passive handshake in the last few minutes bypass the bucket (the
//! XDP program's good-sources map, fed from `sock:inet_sock_set_state`): a spoofed source
//! never completes one, so the flood is throttled while returning clients are not. New clients
//! share the bucket with the flood: the rate must stay below what the listener's SYN queue
//! absorbs (`tcp_max_syn_backlog` / SYN-ACK retry time), which is why it is low by default.
//!
//! While SYN cookies absorb the flood (the kernel answered SYNs with cookies,
//! `TCPReqQFullDoCookies` grew, and handshakes still complete) the port limit is skipped: the
//! listener is coping, and a bucket shared with the flood would only turn new clients away.
//!
//! A flood concentrated on a few sources is `xdp_source_limit`'s case (skipped here, with the
//! reason). A finding outside the daemon's own namespace is skipped (the XDP program sees
//! only its interfaces). Verification: the entry is in the map and not expired; effect: in
//! place (see `xdp_source_limit`).
use serde::{Deserialize, Serialize};

use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Plan};
use super::xdp_limit::{limit_change, netns_mismatch};
use crate::faults::{syn_flood, Evidence, FaultId, Finding};
use crate::probes::limits::{LimitKey, LimitSpec};

pub const NAME: RemedyId = RemedyId::XdpPortLimit;

/// `[remedies.xdp_port_limit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SYNs per second the port still accepts from sources without a recent handshake.
    pub rate_pps: u64,
    /// SYNs such sources may send at once.
    pub burst: u64,
    /// How long the limit stays (ms).
    pub ttl_ms: u64,
    /// The flood counts as concentrated (and is left to `xdp_source_limit`) when one of its
    /// top sources sent at least this fraction of the port's SYNs.
    pub concentrated_share: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate_pps: 10,
            burst: 20,
            ttl_ms: 60_000,
            concentrated_share: 0.2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct XdpPortLimit {
    cfg: Config,
    xdp_netns: Option<u32>,
}

impl XdpPortLimit {
    pub fn new(cfg: Config, xdp_netns: Option<u32>) -> Self {
        XdpPortLimit { cfg, xdp_netns }
    }
}

impl Remedy for XdpPortLimit {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[syn_flood::FAULT]
    }

    fn plan(&self, f: &Finding, _ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != syn_flood::FAULT {
            return None;
        }
        let port = f.subject.port.filter(|&p| p != 0)?;
        if let Some(reason) = netns_mismatch(f.netns, self.xdp_netns) {
            return Some(Plan::Skip(reason));
        }
        let ev = match &f.evidence {
            Evidence::SynFlood(e) => Some(e),
            _ => None,
        };
        if let Some(e) = ev.filter(|e| e.cookies.unwrap_or(0) > 0 && e.completed > 0) {
            return Some(Plan::Skip(format!(
                "SYN cookies absorb the flood: the kernel answered {} SYNs with cookies \
                 (TCPReqQFullDoCookies) and {} handshakes completed in the window",
                e.cookies.unwrap_or(0),
                e.completed
            )));
        }
        let syns = ev.map_or(0, |e| e.syns) as f64;
        let top = ev
            .and_then(|e| e.top_sources.first())
            .map(|s| (s.addr.as_str(), s.syns));
        if let Some((addr, n)) = top {
            if syns > 0.0 && n as f64 >= self.cfg.concentrated_share * syns {
                return Some(Plan::Skip(format!(
                    "the flood is concentrated: {addr} sent {n} of {syns} SYNs (a source limit's case)"
                )));
            }
        }
        let spec = LimitSpec {
            key: LimitKey::Port { port },
            rate_pps: self.cfg.rate_pps,
            burst: self.cfg.burst,
            ttl_ms: self.cfg.ttl_ms,
        };
        Some(Plan::Change(Box::new(limit_change(
            NAME,
            f,
            vec![spec],
            self.cfg.ttl_ms,
            Effect::InPlace,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{FaultState, Severity, Subject};
    use crate::remedy::testing::{change, ctx, FakeState};
    use crate::remedy::{Action, Lifetime, Verify};

    const NS: u32 = 4026531840;

    fn flood(port: u16, syns: u64, top: &[(&str, u64)], netns: Option<u32>) -> Finding {
        Finding {
            fault: syn_flood::FAULT,
            layer: 4,
            severity: Severity::Error,
            state: FaultState::Opened,
            subject: Subject {
                port: Some(port),
                ..Default::default()
            },
            evidence: Evidence::SynFlood(syn_flood::Evidence {
                syns,
                top_sources: top
                    .iter()
                    .map(|(a, n)| syn_flood::evidence::Source {
                        addr: a.to_string(),
                        syns: *n,
                    })
                    .collect(),
                ..Default::default()
            }),
            key: syn_flood::key(NS, port),
            netns,
        }
    }

    fn spread() -> Finding {
        flood(80, 5000, &[("1.2.3.4", 3), ("5.6.7.8", 2)], Some(NS))
    }

    #[test]
    fn table() {
        let r = XdpPortLimit::new(Config::default(), Some(NS));
        let st = FakeState::default();
        let mut other = spread();
        other.fault = crate::faults::FaultId::ConnectionFlood;
        let skip = |f: &Finding| matches!(r.plan(f, &ctx(&st)), Some(Plan::Skip(_)));
        let applies = |f: &Finding| matches!(r.plan(f, &ctx(&st)), Some(Plan::Change(_)));
        assert!(applies(&spread()), "spoofed flood");
        assert!(applies(&flood(80, 5000, &[], Some(NS))), "no sources known");
        assert!(
            applies(&flood(80, 5000, &[], None)),
            "daemon's own namespace"
        );
        assert!(r.plan(&other, &ctx(&st)).is_none(), "other fault");
        assert!(
            r.plan(&flood(0, 5000, &[], None), &ctx(&st)).is_none(),
            "port 0"
        );
        assert!(
            skip(&flood(80, 5000, &[("10.0.0.7", 4000)], Some(NS))),
            "concentrated"
        );
        assert!(skip(&flood(80, 5000, &[], Some(NS + 1))), "other namespace");
    }

    #[test]
    fn skipped_while_syn_cookies_absorb_the_flood() {
        let r = XdpPortLimit::new(Config::default(), Some(NS));
        let st = FakeState::default();
        let with = |cookies: Option<u64>, completed: u64| {
            let mut f = spread();
            if let Evidence::SynFlood(e) = &mut f.evidence {
                e.cookies = cookies;
                e.completed = completed;
            }
            r.plan(&f, &ctx(&st))
        };
        let Some(Plan::Skip(why)) = with(Some(4000), 20) else {
            panic!("expected a skip");
        };
        assert!(why.contains("SYN cookies") && why.contains("4000"), "{why}");
        // Cookies but no handshake completes, no cookies, or unknown: the limit applies.
        assert!(matches!(with(Some(4000), 0), Some(Plan::Change(_))));
        assert!(matches!(with(Some(0), 20), Some(Plan::Change(_))));
        assert!(matches!(with(None, 20), Some(Plan::Change(_))));
    }

    #[test]
    fn skip_reasons_say_why() {
        let r = XdpPortLimit::new(Config::default(), Some(NS));
        let st = FakeState::default();
        let Some(Plan::Skip(why)) = r.plan(&flood(80, 5000, &[], Some(7)), &ctx(&st)) else {
            panic!("expected a skip");
        };
        assert!(why.contains("namespace 7"), "{why}");
        let conc = flood(80, 5000, &[("10.0.0.7", 4000)], Some(NS));
        let Some(Plan::Skip(why)) = r.plan(&conc, &ctx(&st)) else {
            panic!("expected a skip");
        };
        assert!(
            why.contains("10.0.0.7") && why.contains("concentrated"),
            "{why}"
        );
    }

    #[test]
    fn plan_is_a_port_entry_with_ttl_delete_inverse_and_presence_check() {
        let cfg = Config {
            rate_pps: 5,
            burst: 7,
            ttl_ms: 3000,
            ..Default::default()
        };
        let p = change(
            &XdpPortLimit::new(cfg, Some(NS)),
            &spread(),
            &ctx(&FakeState::default()),
        );
        let key = LimitKey::Port { port: 80 };
        let spec = LimitSpec {
            key,
            rate_pps: 5,
            burst: 7,
            ttl_ms: 3000,
        };
        assert_eq!(p.remedy, NAME);
        assert_eq!(p.targets, ["port:80"]);
        assert_eq!(
            (p.apply.clone(), p.inverse.clone()),
            Action::all(vec![(
                Action::XdpLimitInsert(spec),
                Action::XdpLimitRemove { key }
            )])
        );
        assert_eq!(
            p.verify,
            Verify::All {
                checks: vec![Verify::XdpLimitPresent { key }]
            }
        );
        assert_eq!(p.lifetime, Lifetime::Ttl { ms: 3000 });
        assert_eq!(p.effect, Effect::InPlace);
        assert_eq!(p.before, json!({"limits": []}));
        assert_eq!(
            p.after,
            json!({"limits": [{"key": "port:80", "rate_pps": 5, "burst": 7, "ttl_ms": 3000}]})
        );
        assert_eq!(p.subject.port, Some(80));
        assert_eq!(
            p.apply.to_string(),
            "xdp limit port:80 5/s burst 7 for 3000 ms"
        );
        assert_eq!(p.inverse.to_string(), "xdp unlimit port:80");
        let v = serde_json::to_value(&p.apply).unwrap();
        assert_eq!(v["actions"][0]["op"], "xdp_limit_insert");
        assert_eq!(v["actions"][0]["key"], json!({"kind": "port", "port": 80}));
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), p.apply);
        let v = serde_json::to_value(&p.verify).unwrap();
        assert_eq!(serde_json::from_value::<Verify>(v).unwrap(), p.verify);
    }
}
