//! Sources: what the kernel hands over. Individual events arrive through the ring buffer
//! (`ringbuf`); totals are read from the per-CPU maps on a tick (`counters`); the other
//! samplers read what detectors need beyond that (MIB counters, socket tables, flows, DNS,
//! link statistics), each in its own file. Everything goes to the engine as [`Input`]s through
//! the [`feed`].
mod bind_check;
pub mod close_wait;
pub mod connect_ends;
pub mod counters;
pub mod decode;
pub mod dns;
pub mod dns_spoof;
pub mod feed;
pub mod flows;
pub mod http;
pub mod linkstats;
pub mod mib;
pub mod mibtext;
pub mod misses;
pub mod procnet;
pub mod resets;
pub mod ringbuf;
mod sampler;
pub mod sockagg;
pub mod throttle;
pub mod tls;
pub mod tls_cert;
mod tls_prune;
pub mod zero_window;

use crate::probes::{ProbeError, Probes};

pub use crate::input::Input;
pub use sampler::{Sampler, TickContext};

/// Every sampler besides the counter maps, in the order they run on a tick.
pub fn samplers(probes: &mut Probes) -> Result<Vec<Box<dyn Sampler>>, ProbeError> {
    let mut v: Vec<Box<dyn Sampler>> = vec![
        Box::new(mib::MibSampler::new()),
        Box::new(flows::FlowSampler::new(probes)?),
        Box::new(dns::DnsSampler::new(probes)?),
        Box::new(dns_spoof::DnsSpoofSampler::new(probes)?),
        Box::new(linkstats::LinkStatsSampler::new()),
    ];
    if let Some(h) = http::HttpSampler::new(probes)? {
        v.push(Box::new(h));
    }
    if let Some(r) = resets::ResetSampler::new(probes)? {
        v.push(Box::new(r));
    }
    if let Some(c) = close_wait::CloseWaitSampler::new(probes)? {
        v.push(Box::new(c));
    }
    if let Some(t) = tls::TlsSampler::new(probes)? {
        v.push(Box::new(t));
    }
    Ok(v)
}
