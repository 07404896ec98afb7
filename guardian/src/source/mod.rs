//! Sources: what the kernel hands over. Individual events arrive through the ring buffer
//! (`ringbuf`); totals are read from the per-CPU maps on a tick (`counters`); the other
//! samplers read what detectors need beyond that (MIB counters, socket tables, flows, DNS,
//! link statistics), each in its own file. Everything goes to the engine as [`Input`]s through
//! the [`feed`].
pub mod counters;
pub mod decode;
pub mod dns;
pub mod feed;
pub mod flows;
pub mod linkstats;
pub mod mib;
pub mod misses;
pub mod ringbuf;
pub mod sockagg;
pub mod throttle;

use crate::netns;
use crate::probes::{ProbeError, Probes};

pub use crate::input::Input;

/// What a sampler gets on every tick.
pub struct TickContext<'a> {
    /// Namespaces that had activity since the daemon attached (plus the daemon's own).
    pub active: &'a [u32],
    /// The daemon's own namespace.
    pub own_netns: u32,
    /// Finds a path to enter a namespace by inode.
    pub index: &'a mut netns::Index,
    /// True on the last tick, at shutdown.
    pub last: bool,
}

/// A periodic reader of kernel state that turns it into detector inputs.
pub trait Sampler: Send {
    fn name(&self) -> &'static str;
    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input>;
}

/// Every sampler besides the counter maps, in the order they run on a tick.
pub fn samplers(probes: &mut Probes) -> Result<Vec<Box<dyn Sampler>>, ProbeError> {
    Ok(vec![
        Box::new(mib::MibSampler::new()),
        Box::new(flows::FlowSampler::new(probes)?),
        Box::new(dns::DnsSampler::new(probes)?),
        Box::new(linkstats::LinkStatsSampler::new()),
    ])
}
