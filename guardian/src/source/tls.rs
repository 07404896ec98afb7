//! TLS handshake outcomes per (namespace, process, role, listener, peer) from the OpenSSL
//! uprobes' map (`TLS_HANDSHAKES`, guardian-ebpf/src/tls_hs.rs) and plaintext alerts per
//! (namespace, role, listener, peer, level, description) from the write tracepoints
//! (`TLS_ALERTS`, guardian-ebpf/src/tls_alert.rs), cumulative since attach; one `Input::Tls`
//! per namespace with either. Present when the HTTP tracepoints are attached
//! (`guardian run --http`); the handshake counts only with a libssl found. Entries of gone
//! namespaces and idle alert entries are deleted (`tls_prune.rs`); a namespace whose entries
//! were all deleted gets one empty sample, which tells the detector to forget it.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use aya::maps::{HashMap as BpfHashMap, MapData};
use guardian_common::tls::{AlertKey, HsKey, HsStats, ROLE_CLIENT};

use super::decode;
use super::sampler::{Sampler, TickContext};
use super::tls_cert::CertProber;
use super::tls_prune::{Gone, Idle, ALERT_IDLE};
use crate::input::Input;
use crate::model::tls::{AlertCounts, HandshakeCounts, Role, TlsSample};
use crate::probes::{ProbeError, Probes};

/// The kernel maps the sampler reads.
pub const MAP: &str = "TLS_HANDSHAKES";
pub const ALERTS_MAP: &str = "TLS_ALERTS";

pub struct TlsSampler {
    /// None without the OpenSSL uprobes.
    map: Option<BpfHashMap<MapData, HsKey, HsStats>>,
    alerts: BpfHashMap<MapData, AlertKey, u64>,
    /// Process names by pid, read once from /proc (a process keeps its pid), for the pids in
    /// the map.
    comms: HashMap<u32, String>,
    /// Reads the certificates of the server listeners seen (None: its thread did not start).
    certs: Option<CertProber>,
    /// The alert entries' last moves, and the namespaces found gone.
    idle: Idle<AlertKey>,
    gone: Gone,
    /// Paths to the namespaces of the entries: the counters' index keeps only the namespaces
    /// with counters, and forgets an absence the moment it forgets the namespace.
    index: crate::netns::Index,
}

impl TlsSampler {
    /// Takes the maps from the loaded probes; None when the HTTP tracepoints are not attached.
    pub fn new(probes: &mut Probes) -> Result<Option<Self>, ProbeError> {
        if !probes.http_attached() {
            return Ok(None);
        }
        let map = match probes.tls_attached() {
            true => Some(
                BpfHashMap::try_from(probes.take_map(MAP)?)
                    .map_err(|_| ProbeError::MissingMap(MAP))?,
            ),
            false => None,
        };
        let alerts = BpfHashMap::try_from(probes.take_map(ALERTS_MAP)?)
            .map_err(|_| ProbeError::MissingMap(ALERTS_MAP))?;
        let certs = CertProber::new()
            .inspect_err(|e| tracing::warn!(error = %e, "tls_cert_expiry is unavailable"))
            .ok();
        Ok(Some(Self {
            map,
            alerts,
            comms: HashMap::new(),
            certs,
            idle: Idle::new(),
            gone: Gone::default(),
            index: crate::netns::Index::new(),
        }))
    }
}

/// A key's address as text ("" when the family is not an inet one).
fn ip(family: u16, raw: &[u8; 16]) -> String {
    decode::addr(family, raw)
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// The counts of one key (`comm` left empty), summed over the values given: the kernel keeps
/// one that the CPUs share.
pub fn counts(key: &HsKey, per_cpu: impl IntoIterator<Item = HsStats>) -> HandshakeCounts {
    let ip = |raw| ip(key.family, raw);
    let mut c = HandshakeCounts {
        // Unknown roles are servers' (`SSL_do_handshake` without `SSL_set_accept_state` seen).
        role: match key.role {
            ROLE_CLIENT => Role::Client,
            _ => Role::Server,
        },
        addr: ip(&key.addr),
        port: key.port,
        peer: ip(&key.peer),
        pid: key.tgid,
        comm: String::new(),
        ok: 0,
        failed: 0,
        aborted: 0,
    };
    for s in per_cpu {
        c.ok += s.ok;
        c.failed += s.failed;
        c.aborted += s.aborted;
    }
    c
}

/// The count of one alert key, summed over the values given (one, shared by the CPUs).
pub fn alert_counts(key: &AlertKey, per_cpu: impl IntoIterator<Item = u64>) -> AlertCounts {
    let ip = |raw| ip(key.family, raw);
    AlertCounts {
        role: match key.role {
            ROLE_CLIENT => Role::Client,
            _ => Role::Server,
        },
        addr: ip(&key.addr),
        port: key.port,
        peer: ip(&key.peer),
        level: key.level,
        code: key.desc,
        count: per_cpu.into_iter().sum(),
    }
}

impl Sampler for TlsSampler {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        let now = Instant::now();
        // Each key once (an iteration that loses its place to an eviction starts over from
        // the first bucket: see source/http.rs).
        let mut read = HashSet::new();
        let alert_entries: Vec<(AlertKey, AlertCounts)> = self
            .alerts
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| read.insert(*k))
            .map(|(k, v)| (k, alert_counts(&k, [v])))
            .collect();
        let mut read = HashSet::new();
        let hs_entries: Vec<(HsKey, HandshakeCounts)> = self
            .map
            .iter()
            .flat_map(|m| m.iter().filter_map(Result::ok))
            .filter(|(k, _)| read.insert(*k))
            .map(|(k, v)| (k, counts(&k, [v])))
            .collect();
        let namespaces: BTreeSet<u32> = alert_entries
            .iter()
            .map(|e| e.0.netns)
            .chain(hs_entries.iter().map(|e| e.0.netns))
            .filter(|&ns| ns != ctx.own_netns)
            .collect();
        let index = &mut self.index;
        let gone: HashSet<u32> = self
            .gone
            .check(now, namespaces, |ns| {
                // Looked for afresh (scans at most once a second): a new namespace can have
                // the number of one found absent a moment ago.
                index.revive(ns);
                index.path(ns).is_some()
            })
            .into_iter()
            .collect();
        let idle: HashSet<AlertKey> = self
            .idle
            .observe(
                now,
                alert_entries
                    .iter()
                    .filter(|e| !gone.contains(&e.0.netns))
                    .map(|(k, c)| (*k, c.count)),
                ALERT_IDLE,
            )
            .into_iter()
            .collect();
        let mut by: BTreeMap<u32, Vec<HandshakeCounts>> = BTreeMap::new();
        let mut alerts: BTreeMap<u32, Vec<AlertCounts>> = BTreeMap::new();
        // Namespaces with an entry deleted now: listed even if nothing of them is left.
        let mut pruned: BTreeSet<u32> = BTreeSet::new();
        for (k, c) in alert_entries {
            if gone.contains(&k.netns) || idle.contains(&k) {
                if let Err(e) = self.alerts.remove(&k) {
                    tracing::debug!(netns = k.netns, error = %e, "deleting a TLS alert entry");
                }
                pruned.insert(k.netns);
                continue;
            }
            alerts.entry(k.netns).or_default().push(c);
            by.entry(k.netns).or_default();
        }
        for (k, mut c) in hs_entries {
            if gone.contains(&k.netns) {
                if let Some(Err(e)) = self.map.as_mut().map(|m| m.remove(&k)) {
                    tracing::debug!(netns = k.netns, error = %e, "deleting a TLS handshake entry");
                }
                pruned.insert(k.netns);
                continue;
            }
            c.comm = self
                .comms
                .entry(k.tgid)
                .or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{}/comm", k.tgid))
                        .map(|s| s.trim_end().to_string())
                        .unwrap_or_default()
                })
                .clone();
            by.entry(k.netns).or_default().push(c);
        }
        // Process names of the processes still in the map only (pids are reused).
        let pids: HashSet<u32> = by.values().flatten().map(|h| h.pid).collect();
        self.comms.retain(|pid, _| pids.contains(pid));
        for ns in pruned {
            by.entry(ns).or_default();
        }
        if let Some(p) = &mut self.certs {
            let listeners: Vec<_> = by
                .iter()
                .flat_map(|(ns, hs)| hs.iter().map(move |h| (*ns, h)))
                .filter(|(_, h)| h.role == Role::Server && h.port != 0)
                .filter_map(|(ns, h)| Some(((ns, h.addr.parse::<IpAddr>().ok()?, h.port), h.pid)))
                .collect();
            let own = ctx.own_netns;
            let index = &mut *ctx.index;
            p.poll(listeners, Instant::now(), |ns| match ns == own {
                true => Ok(None),
                false => index.path(ns).map(Some).ok_or(()),
            });
        }
        let certs = self.certs.as_ref();
        by.into_iter()
            .map(|(netns, mut handshakes)| {
                handshakes.sort_by(|a, b| {
                    (a.role, a.port, &a.addr, &a.peer, a.pid)
                        .cmp(&(b.role, b.port, &b.addr, &b.peer, b.pid))
                });
                let mut alerts = alerts.remove(&netns).unwrap_or_default();
                alerts.sort_by(|a, b| {
                    (a.role, a.port, &a.addr, &a.peer, a.level, a.code)
                        .cmp(&(b.role, b.port, &b.addr, &b.peer, b.level, b.code))
                });
                Input::Tls(TlsSample {
                    netns,
                    handshakes,
                    alerts,
                    certs: certs.map(|c| c.certs(netns)).unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::tls::ROLE_SERVER;

    #[test]
    fn sums_cpus_and_names_roles() {
        let mut k = HsKey {
            netns: 7,
            tgid: 42,
            family: guardian_common::AF_INET,
            port: 8443,
            role: ROLE_SERVER,
            ..Default::default()
        };
        k.addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        k.peer[..4].copy_from_slice(&[10, 0, 0, 2]);
        let a = HsStats {
            ok: 3,
            failed: 2,
            aborted: 0,
        };
        let b = HsStats {
            ok: 1,
            failed: 1,
            aborted: 4,
        };
        let c = counts(&k, [a, b]);
        assert_eq!(c.role, Role::Server);
        assert_eq!(c.listener(), "10.0.0.1:8443");
        assert_eq!(c.peer, "10.0.0.2");
        assert_eq!((c.ok, c.failed, c.aborted), (4, 3, 4));
        k.role = ROLE_CLIENT;
        assert_eq!(counts(&k, []).role, Role::Client);
        // An unresolved socket: no addresses.
        let u = counts(&HsKey::default(), []);
        assert_eq!((u.listener().as_str(), u.peer.as_str()), (":0", ""));
    }

    #[test]
    fn sums_alerts_and_keeps_the_writer_role() {
        let mut k = AlertKey {
            netns: 7,
            family: guardian_common::AF_INET6,
            port: 5556,
            role: ROLE_CLIENT,
            level: 2,
            desc: 48,
            ..Default::default()
        };
        k.addr[15] = 1;
        k.peer[15] = 2;
        let c = alert_counts(&k, [2, 0, 3]);
        assert_eq!(c.role, Role::Client);
        assert_eq!(c.listener(), "[::1]:5556");
        assert_eq!(c.peer, "::2");
        assert_eq!((c.level, c.code, c.count), (2, 48, 5));
        k.role = ROLE_SERVER;
        assert_eq!(alert_counts(&k, []).role, Role::Server);
        assert_eq!(alert_counts(&k, []).count, 0);
    }
}
