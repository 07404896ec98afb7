//! The sampler contract: what a periodic reader of kernel state gets on a tick and gives back.
use crate::input::Input;
use crate::netns;

/// What a sampler gets on every tick.
pub struct TickContext<'a> {
    /// Namespaces that had activity since the daemon attached (plus the daemon's own).
    pub active: &'a [u32],
    /// The daemon's own namespace.
    pub own_netns: u32,
    /// Finds a path to enter a namespace by inode.
    pub index: &'a mut netns::Index,
    /// Namespaces whose connects failed with EADDRNOTAVAIL since the last tick.
    pub eaddrnotavail: &'a std::collections::HashSet<u32>,
    /// True on the last tick, at shutdown.
    pub last: bool,
}

/// A periodic reader of kernel state that turns it into detector inputs.
pub trait Sampler: Send {
    fn name(&self) -> &'static str;
    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input>;
}
