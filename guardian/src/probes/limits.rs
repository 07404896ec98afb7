//! The XDP program's SYN limits (`guardian-ebpf/src/limits.rs`): token buckets per source
//! address and per destination port, each with an expiry. Written by the `xdp_source_limit`
//! and `xdp_port_limit` remedies.
use std::fmt;
use std::net::IpAddr;

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, MapError};
use guardian_common::limits::{
    LimitPortKey, LimitSrcKey, TokenBucket, LPM_ADDR_OFFSET_BITS, MAX_BURST, MAX_RATE,
};
use serde::{Deserialize, Serialize};

use super::addr::family_addr;
pub use super::clock::boot_ns;
use super::error::ProbeError;

pub const SRC_MAP: &str = "LIMIT_SRC";
pub const PORT_MAP: &str = "LIMIT_PORT";
pub const ON_MAP: &str = "LIMITS_ON";
pub const PROTECTED_MAP: &str = "PROTECTED_SRC";

/// What a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitKey {
    /// SYNs from this source address, to `port` only when there is one.
    Src {
        addr: IpAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    /// SYNs to this destination port (from sources that did not recently complete a
    /// handshake).
    Port { port: u16 },
}

impl LimitKey {
    /// The blast-radius target, `src:10.0.0.7` or `port:80`.
    pub fn target(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::Src { addr, port: None } => write!(f, "src:{addr}"),
            LimitKey::Src {
                addr,
                port: Some(p),
            } => write!(f, "src:{addr},port:{p}"),
            LimitKey::Port { port } => write!(f, "port:{port}"),
        }
    }
}

/// A limit to install: `rate_pps` SYNs per second with bursts of `burst`, for `ttl_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSpec {
    pub key: LimitKey,
    pub rate_pps: u64,
    pub burst: u64,
    pub ttl_ms: u64,
}

/// An installed limit as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitEntry {
    pub rate_pps: u64,
    pub burst: u64,
    /// Milliseconds until it expires; 0 when it already has (the XDP program ignores it).
    pub remaining_ms: u64,
    pub dropped: u64,
    pub passed: u64,
}

impl LimitEntry {
    pub fn expired(&self) -> bool {
        self.remaining_ms == 0
    }
}

/// The two limit maps, taken out of the loaded object, and the flag that tells the XDP
/// program whether to look in them at all (`LIMITS_ON`): set before a limit is installed,
/// cleared when the last one is removed. An expired limit the program removed itself leaves
/// the flag set until the remedy's own removal; that costs lookups, never a wrong verdict.
pub struct Limits {
    src: HashMap<MapData, LimitSrcKey, TokenBucket>,
    port: HashMap<MapData, LimitPortKey, TokenBucket>,
    on: Array<MapData, u32>,
    protected: LpmTrie<MapData, LimitSrcKey, u8>,
    /// What `protected` holds, to write only the differences.
    protected_now: Vec<ipnet::IpNet>,
}

impl Limits {
    /// Takes its maps out of the object with `take_map` ([`super::Probes::take_map`]).
    pub fn take(
        mut take_map: impl FnMut(&'static str) -> Result<Map, ProbeError>,
    ) -> Result<Self, ProbeError> {
        Ok(Limits {
            src: HashMap::try_from(take_map(SRC_MAP)?)
                .map_err(|_| ProbeError::MissingMap(SRC_MAP))?,
            port: HashMap::try_from(take_map(PORT_MAP)?)
                .map_err(|_| ProbeError::MissingMap(PORT_MAP))?,
            on: Array::try_from(take_map(ON_MAP)?).map_err(|_| ProbeError::MissingMap(ON_MAP))?,
            protected: LpmTrie::try_from(take_map(PROTECTED_MAP)?)
                .map_err(|_| ProbeError::MissingMap(PROTECTED_MAP))?,
            protected_now: Vec::new(),
        })
    }

    /// Makes the XDP program's protected sources exactly `nets` (at most the map's 1024; the
    /// rest are still refused by the safety check, only not bypassed in the kernel).
    pub fn set_protected(&mut self, nets: &[ipnet::IpNet]) -> Result<(), MapError> {
        // In the given order (the operator's keywords and prefixes first), without repeats.
        let mut seen = std::collections::HashSet::new();
        let mut want: Vec<ipnet::IpNet> = nets
            .iter()
            .map(|n| n.trunc())
            .filter(|n| seen.insert(*n))
            .collect();
        want.truncate(1024);
        if want == self.protected_now {
            return Ok(());
        }
        for n in self.protected_now.iter().filter(|n| !want.contains(n)) {
            absent_is_none(self.protected.remove(&lpm_key(*n)))?;
        }
        for n in want.iter().filter(|n| !self.protected_now.contains(n)) {
            self.protected.insert(&lpm_key(*n), 1, 0)?;
        }
        self.protected_now = want;
        Ok(())
    }

    /// Installs (or replaces, with a full bucket and fresh counters) the limit, expiring
    /// `ttl_ms` from now.
    pub fn insert(&mut self, s: &LimitSpec) -> Result<(), MapError> {
        let expires = boot_ns().saturating_add(s.ttl_ms.saturating_mul(1_000_000));
        let b = TokenBucket::new(s.rate_pps.min(MAX_RATE), s.burst.min(MAX_BURST), expires);
        // The flag first: a limit in the map is never skipped.
        self.on.set(0, 1, 0)?;
        match s.key {
            LimitKey::Src { addr, port } => self.src.insert(src_key(addr, port), b, 0),
            LimitKey::Port { port } => self.port.insert(port_key(port), b, 0),
        }
    }

    /// Removes the limit; false when there was none (already expired and removed by the XDP
    /// program, or never installed).
    pub fn remove(&mut self, key: &LimitKey) -> Result<bool, MapError> {
        let r = match *key {
            LimitKey::Src { addr, port } => self.src.remove(&src_key(addr, port)),
            LimitKey::Port { port } => self.port.remove(&port_key(port)),
        };
        let removed = absent_is_none(r.map(|()| true)).map(|o| o.unwrap_or(false))?;
        if self.src.keys().next().is_none() && self.port.keys().next().is_none() {
            self.on.set(0, 0, 0)?;
        }
        Ok(removed)
    }

    /// The limit as installed, if it is.
    pub fn get(&self, key: &LimitKey) -> Result<Option<LimitEntry>, MapError> {
        let r = match *key {
            LimitKey::Src { addr, port } => self.src.get(&src_key(addr, port), 0),
            LimitKey::Port { port } => self.port.get(&port_key(port), 0),
        };
        Ok(absent_is_none(r)?.map(|b| entry(&b, boot_ns())))
    }
}

fn entry(b: &TokenBucket, now_ns: u64) -> LimitEntry {
    LimitEntry {
        rate_pps: b.rate_pps,
        burst: b.burst,
        remaining_ms: b.expires_ns.saturating_sub(now_ns).div_ceil(1_000_000),
        dropped: b.dropped,
        passed: b.passed,
    }
}

fn absent_is_none<T>(r: Result<T, MapError>) -> Result<Option<T>, MapError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound | MapError::ElementNotFound) => Ok(None),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub fn src_key(addr: IpAddr, port: Option<u16>) -> LimitSrcKey {
    let (family, addr) = family_addr(addr);
    LimitSrcKey {
        family,
        port: port.unwrap_or(0),
        addr,
    }
}

/// The trie key of a protected network (see `LPM_ADDR_OFFSET_BITS`).
pub fn lpm_key(n: ipnet::IpNet) -> LpmKey<LimitSrcKey> {
    LpmKey::new(
        LPM_ADDR_OFFSET_BITS + u32::from(n.prefix_len()),
        src_key(n.network(), None),
    )
}

pub fn port_key(port: u16) -> LimitPortKey {
    LimitPortKey { port, _pad: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::limits::TOKEN;
    use guardian_common::{AF_INET, AF_INET6};

    const MS: u64 = 1_000_000;

    #[test]
    fn keys_are_laid_out_as_the_xdp_program_reads_them() {
        let k = src_key("10.77.101.2".parse().unwrap(), None);
        assert_eq!(k.family, AF_INET);
        assert_eq!(k.port, 0, "every port");
        assert_eq!(src_key("10.0.0.1".parse().unwrap(), Some(80)).port, 80);
        let l = lpm_key("10.1.0.0/16".parse().unwrap());
        assert_eq!(l.prefix_len(), LPM_ADDR_OFFSET_BITS + 16);
        assert_eq!(&l.data().addr[..4], &[10, 1, 0, 0]);
        assert_eq!(&k.addr[..4], &[10, 77, 101, 2]);
        assert!(k.addr[4..].iter().all(|&b| b == 0));
        let k6 = src_key("fd00::7".parse().unwrap(), None);
        assert_eq!(k6.family, AF_INET6);
        assert_eq!(k6.addr[15], 7);
        assert_eq!(port_key(80).port, 80);
    }

    #[test]
    fn bucket_passes_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(10, 5, u64::MAX);
        let t0 = 1_000 * MS;
        let burst = (0..20).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 5, "a fresh bucket passes its burst");
        // 100 ms at 10/s: one more token.
        assert!(b.take(t0 + 100 * MS));
        assert!(!b.take(t0 + 150 * MS));
        // A long quiet period refills to the burst, not beyond.
        let later = t0 + 3_600_000 * MS;
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 5);
        assert!(b.tokens < TOKEN);
    }

    #[test]
    fn bucket_rate_over_a_second() {
        let mut b = TokenBucket::new(100, 1, u64::MAX);
        let t0 = 5_000 * MS;
        // 10_000 SYNs/s for one second (one every 100 µs): about rate + burst pass.
        let passed = (0..10_000u64).filter(|i| b.take(t0 + i * 100_000)).count();
        assert!((100..=102).contains(&passed), "{passed}");
    }

    #[test]
    fn huge_parameters_do_not_overflow() {
        let mut b = TokenBucket::new(MAX_RATE, MAX_BURST, u64::MAX);
        assert!(b.take(1));
        assert!(b.take(u64::MAX / 2));
    }

    #[test]
    fn entries_report_remaining_time_and_expiry() {
        let b = TokenBucket::new(1, 1, 10_000 * MS);
        let e = entry(&b, 7_000 * MS);
        assert_eq!(e.remaining_ms, 3_000);
        assert!(!e.expired());
        assert!(entry(&b, 10_000 * MS).expired());
        assert!(entry(&b, 11_000 * MS).expired());
    }

    #[test]
    fn keys_serialize_with_a_kind_and_display_as_targets() {
        let k = LimitKey::Src {
            addr: "10.0.0.7".parse().unwrap(),
            port: None,
        };
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::json!({"kind": "src", "addr": "10.0.0.7"})
        );
        assert_eq!(k.target(), "src:10.0.0.7");
        let kp = LimitKey::Src {
            addr: "10.0.0.7".parse().unwrap(),
            port: Some(8081),
        };
        let v = serde_json::to_value(kp).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "src", "addr": "10.0.0.7", "port": 8081})
        );
        assert_eq!(serde_json::from_value::<LimitKey>(v).unwrap(), kp);
        assert_eq!(kp.to_string(), "src:10.0.0.7,port:8081");
        // A journal written before ports: still reads.
        let old: LimitKey =
            serde_json::from_value(serde_json::json!({"kind": "src", "addr": "10.0.0.7"})).unwrap();
        assert_eq!(old, k);
        assert_eq!(LimitKey::Port { port: 80 }.target(), "port:80");
    }
}
