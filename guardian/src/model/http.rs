//! HTTP responses per service, cumulative since attach: what the HTTP sampler reads from the
//! kernel each tick and the `http_*` detectors consume.
use serde::{Deserialize, Serialize};

/// Every service seen in one namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HttpSample {
    pub netns: u32,
    pub services: Vec<ServiceCounts>,
}

/// One server process answering on one local address and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServiceCounts {
    /// Local address of the connections (the listener's address, or the address a wildcard
    /// listener accepted on); empty when the socket could not be resolved.
    pub addr: String,
    pub port: u16,
    pub pid: u32,
    pub comm: String,
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s429: u64,
    pub s5xx: u64,
    pub s500: u64,
    pub s502: u64,
    pub s503: u64,
    pub s504: u64,
    /// Sum of the latencies, nanoseconds.
    pub lat_sum_ns: u64,
    /// Latency histogram (bounds: `guardian_common::http::LAT_BOUND_US`).
    pub lat: Vec<u64>,
}

impl ServiceCounts {
    /// Every final response counted.
    pub fn responses(&self) -> u64 {
        self.s2xx + self.s3xx + self.s4xx + self.s5xx
    }

    /// `addr:port` (`[addr]:port` for IPv6), the service's name in keys and evidence.
    pub fn service(&self) -> String {
        if self.addr.contains(':') {
            format!("[{}]:{}", self.addr, self.port)
        } else {
            format!("{}:{}", self.addr, self.port)
        }
    }
}
