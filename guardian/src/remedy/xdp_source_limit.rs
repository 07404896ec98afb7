//! `xdp_source_limit`: a SYN token bucket per flooding source in guardian's XDP program, with
//! a TTL (inverse: delete the entry).
//!
//! - `connection_flood`: the finding's source (`subject.addr`).
//! - `syn_flood`: the top sources of the finding's evidence that each sent at least
//!   `min_share` of the port's SYNs in the window (at most `max_sources`), each limited on
//!   that port only (the XDP program keys source limits on (source, port)). A flood without
//!   such sources (spoofed, spread) is `xdp_port_limit`'s case: skipped with the reason.
//!
//! The XDP program sees only the interfaces of the daemon's own namespace, so a finding in
//! another namespace is skipped. Verification: every entry is in the map and not expired.
//! Effect: for `connection_flood`, the incident clears (the source's connection rate falls
//! below the detector's limit). For `syn_flood`, in place: XDP counts SYNs before it drops
//! them, so a SYN flood does not clear while it goes on, limited or not; the entries'
//! `dropped` counters show the limit working.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Plan};
use super::xdp_limit::{limit_change, netns_mismatch};
use crate::faults::{connection_flood, syn_flood, Evidence, FaultId, Finding};
use crate::probes::limits::{LimitKey, LimitSpec};

pub const NAME: RemedyId = RemedyId::XdpSourceLimit;

/// `[remedies.xdp_source_limit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SYNs per second a limited source may still send.
    pub rate_pps: u64,
    /// SYNs a limited source may send at once.
    pub burst: u64,
    /// How long the limit stays (ms); the XDP program ignores it afterwards.
    pub ttl_ms: u64,
    /// `syn_flood`: a top source is limited when it sent at least this fraction of the
    /// port's SYNs in the detector's window.
    pub min_share: f64,
    /// `syn_flood`: at most this many sources per finding.
    pub max_sources: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate_pps: 20,
            burst: 40,
            ttl_ms: 60_000,
            min_share: 0.2,
            max_sources: 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct XdpSourceLimit {
    cfg: Config,
    /// The daemon's own namespace, where the XDP program's interfaces are.
    xdp_netns: Option<u32>,
}

impl XdpSourceLimit {
    pub fn new(cfg: Config, xdp_netns: Option<u32>) -> Self {
        XdpSourceLimit { cfg, xdp_netns }
    }

    fn spec(&self, addr: IpAddr, port: Option<u16>) -> LimitSpec {
        LimitSpec {
            key: LimitKey::Src { addr, port },
            rate_pps: self.cfg.rate_pps,
            burst: self.cfg.burst,
            ttl_ms: self.cfg.ttl_ms,
        }
    }

    /// The concentrated sources of a `syn_flood` finding, or why there are none.
    fn flooding_sources(&self, f: &Finding) -> Result<Vec<IpAddr>, String> {
        let ev = match &f.evidence {
            Evidence::SynFlood(e) => Some(e),
            _ => None,
        };
        let syns = ev.map_or(0, |e| e.syns);
        let top = ev.map(|e| &e.top_sources);
        let Some(top) = top.filter(|t| !t.is_empty() && syns > 0) else {
            return Err("the finding names no sources".into());
        };
        let picked: Vec<IpAddr> = top
            .iter()
            .filter(|s| s.syns as f64 >= self.cfg.min_share * syns as f64)
            .filter_map(|s| source_addr(&s.addr))
            .take(self.cfg.max_sources)
            .collect();
        if picked.is_empty() {
            return Err(format!(
                "no source sent {:.0} % of the {syns} SYNs (spread or spoofed sources: a port limit's case)",
                self.cfg.min_share * 100.0
            ));
        }
        Ok(picked)
    }
}

/// A limitable source address: v4-mapped IPv6 as IPv4 (what XDP sees), never unspecified.
pub(crate) fn source_addr(s: &str) -> Option<IpAddr> {
    let a = s.parse::<IpAddr>().ok()?.to_canonical();
    (!a.is_unspecified()).then_some(a)
}

impl Remedy for XdpSourceLimit {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[syn_flood::FAULT, connection_flood::FAULT]
    }

    fn plan(&self, f: &Finding, _ctx: &PlanContext<'_>) -> Option<Plan> {
        let sources = match f.fault {
            connection_flood::FAULT => vec![source_addr(f.subject.addr.as_deref()?)?],
            syn_flood::FAULT => match self.flooding_sources(f) {
                Ok(s) => s,
                Err(reason) => return Some(Plan::Skip(reason)),
            },
            _ => return None,
        };
        if let Some(reason) = netns_mismatch(f.netns, self.xdp_netns) {
            return Some(Plan::Skip(reason));
        }
        // A SYN flood is limited on its port only: the source's other traffic is not its case.
        let port = (f.fault == syn_flood::FAULT)
            .then_some(f.subject.port)
            .flatten()
            .filter(|&p| p != 0);
        let specs = sources.into_iter().map(|a| self.spec(a, port)).collect();
        let effect = if f.fault == connection_flood::FAULT {
            Effect::Clears
        } else {
            Effect::InPlace
        };
        Some(Plan::Change(Box::new(limit_change(
            NAME,
            f,
            specs,
            self.cfg.ttl_ms,
            effect,
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

    fn conn_flood(addr: &str, netns: Option<u32>) -> Finding {
        Finding {
            fault: connection_flood::FAULT,
            layer: 4,
            severity: Severity::Warning,
            state: FaultState::Opened,
            subject: Subject {
                addr: Some(addr.into()),
                ..Default::default()
            },
            evidence: Evidence::ConnectionFlood(connection_flood::Evidence {
                connections_per_sec: 500.0,
                ..Default::default()
            }),
            key: connection_flood::key(NS, addr),
            netns,
        }
    }

    fn syn_flood(syns: u64, top: &[(&str, u64)]) -> Finding {
        Finding {
            fault: syn_flood::FAULT,
            layer: 4,
            severity: Severity::Error,
            state: FaultState::Opened,
            subject: Subject {
                port: Some(80),
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
            key: syn_flood::key(NS, 80),
            netns: Some(NS),
        }
    }

    fn r() -> XdpSourceLimit {
        XdpSourceLimit::new(Config::default(), Some(NS))
    }

    fn targets(f: &Finding) -> Vec<crate::model::Target> {
        change(&r(), f, &ctx(&FakeState::default())).targets
    }

    #[test]
    fn table() {
        let st = FakeState::default();
        let plan = |f: &Finding| r().plan(f, &ctx(&st));
        let skip = |f: &Finding| matches!(plan(f), Some(Plan::Skip(_)));
        assert_eq!(targets(&conn_flood("10.0.0.7", Some(NS))), ["src:10.0.0.7"]);
        assert_eq!(targets(&conn_flood("10.0.0.7", None)), ["src:10.0.0.7"]);
        assert_eq!(targets(&conn_flood("fd00::7", None)), ["src:fd00::7"]);
        // v4-mapped: XDP sees the IPv4 header.
        assert_eq!(
            targets(&conn_flood("::ffff:10.0.0.7", None)),
            ["src:10.0.0.7"]
        );
        assert!(
            skip(&conn_flood("10.0.0.7", Some(NS + 1))),
            "other namespace"
        );
        assert!(plan(&conn_flood("garbage", None)).is_none());
        assert!(plan(&conn_flood("0.0.0.0", None)).is_none());
        let mut no_addr = conn_flood("10.0.0.7", None);
        no_addr.subject.addr = None;
        assert!(plan(&no_addr).is_none());
        // syn_flood: the sources with ≥ 20 % of the port's SYNs, at most 4.
        assert_eq!(
            targets(&syn_flood(
                1000,
                &[("10.0.0.1", 700), ("10.0.0.2", 200), ("10.0.0.3", 199)]
            )),
            ["src:10.0.0.1", "src:10.0.0.2"]
        );
        let five: Vec<(String, u64)> = (1..=5).map(|i| (format!("10.0.0.{i}"), 200)).collect();
        let five: Vec<(&str, u64)> = five.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        assert_eq!(targets(&syn_flood(1000, &five)).len(), 4);
        assert!(
            skip(&syn_flood(1000, &[("1.2.3.4", 3), ("5.6.7.8", 2)])),
            "spread"
        );
        assert!(skip(&syn_flood(1000, &[])), "no sources");
        let mut other = syn_flood(1000, &[("10.0.0.1", 900)]);
        other.fault = crate::faults::FaultId::LinkDown;
        assert!(plan(&other).is_none());
    }

    #[test]
    fn skip_reasons_say_why() {
        let st = FakeState::default();
        let Some(Plan::Skip(why)) = r().plan(&conn_flood("10.0.0.7", Some(9)), &ctx(&st)) else {
            panic!("expected a skip");
        };
        assert!(why.contains("namespace 9"), "{why}");
        let Some(Plan::Skip(why)) = r().plan(&syn_flood(1000, &[("1.2.3.4", 3)]), &ctx(&st)) else {
            panic!("expected a skip");
        };
        assert!(why.contains("20 %") && why.contains("1000"), "{why}");
    }

    #[test]
    fn plan_is_one_entry_per_source_with_ttl_and_exact_inverse() {
        let cfg = Config {
            rate_pps: 3,
            burst: 4,
            ttl_ms: 2500,
            ..Default::default()
        };
        let p = change(
            &XdpSourceLimit::new(cfg, Some(NS)),
            &syn_flood(1000, &[("10.0.0.1", 600), ("10.0.0.2", 300)]),
            &ctx(&FakeState::default()),
        );
        let key = |a: &str| LimitKey::Src {
            addr: a.parse().unwrap(),
            port: Some(80),
        };
        let spec = |a: &str| LimitSpec {
            key: key(a),
            rate_pps: 3,
            burst: 4,
            ttl_ms: 2500,
        };
        let pair = |a: &str| {
            (
                Action::XdpLimitInsert(spec(a)),
                Action::XdpLimitRemove { key: key(a) },
            )
        };
        assert_eq!(p.remedy, NAME);
        assert_eq!(
            (p.apply.clone(), p.inverse.clone()),
            Action::all(vec![pair("10.0.0.1"), pair("10.0.0.2")])
        );
        assert_eq!(
            p.verify,
            Verify::All {
                checks: vec![
                    Verify::XdpLimitPresent {
                        key: key("10.0.0.1")
                    },
                    Verify::XdpLimitPresent {
                        key: key("10.0.0.2")
                    }
                ]
            }
        );
        assert_eq!(p.lifetime, Lifetime::Ttl { ms: 2500 });
        assert_eq!(
            p.effect,
            Effect::InPlace,
            "a limited SYN flood does not clear"
        );
        assert_eq!(p.before, json!({"limits": []}));
        assert_eq!(p.after["limits"][1]["key"], "src:10.0.0.2,port:80");
        assert_eq!(p.after["limits"][1]["rate_pps"], 3);
        assert_eq!(
            p.inverse.to_string(),
            "xdp unlimit src:10.0.0.2,port:80; xdp unlimit src:10.0.0.1,port:80"
        );
        let v = serde_json::to_value(&p.inverse).unwrap();
        assert_eq!(v["actions"][0]["op"], "xdp_limit_remove");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), p.inverse);
    }

    #[test]
    fn a_connection_flood_limit_must_clear_the_incident() {
        let p = change(
            &r(),
            &conn_flood("10.0.0.7", Some(NS)),
            &ctx(&FakeState::default()),
        );
        assert_eq!(p.effect, Effect::Clears);
        assert_eq!(p.lifetime, Lifetime::Ttl { ms: 60_000 });
        assert_eq!(p.subject.addr.as_deref(), Some("10.0.0.7"));
        assert_eq!(
            p.verify,
            Verify::All {
                checks: vec![Verify::XdpLimitPresent {
                    key: LimitKey::Src {
                        addr: "10.0.0.7".parse().unwrap(),
                        port: None,
                    }
                }]
            }
        );
    }

    #[test]
    fn config_table_parses_with_defaults_and_rejects_unknown_fields() {
        let c: Config = toml::from_str("ttl_ms = 3000").unwrap();
        assert_eq!(c.ttl_ms, 3000);
        assert_eq!(c.rate_pps, Config::default().rate_pps);
        assert!(toml::from_str::<Config>("rate = 1").is_err());
    }
}
