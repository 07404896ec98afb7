//! The lab's network namespaces (`glab-<tag>`) and veth pairs (`glab<subnet>a|b`): the shared
//! harness of guardian-testbed with the lab's names. Namespaces are removed when their guards
//! drop, and swept at the start of every lab run in case a killed lab left some.
use std::ops::Deref;

use guardian_testbed::NetNs;
pub use guardian_testbed::{wait, Error as TopoError, Veth};

/// Every namespace the lab creates starts with this.
pub const PREFIX: &str = "glab-";

/// Every veth the lab creates starts with this.
const IF_PREFIX: &str = "glab";

/// The name of the lab's threads that join a namespace.
const THREAD: &str = "glab";

/// A network namespace `glab-<tag>`, deleted (with the processes it spawned) on drop.
#[derive(Debug)]
pub struct Netns(NetNs);

impl Netns {
    /// Creates `glab-<tag>` (replacing a leftover of that name) with its loopback up.
    pub fn new(tag: &str) -> Result<Netns, TopoError> {
        NetNs::create(&format!("{PREFIX}{tag}")).map(Netns)
    }

    /// Runs `f` on a thread that has joined this namespace (sockets it opens live there) and
    /// waits for it.
    pub fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TopoError> {
        self.0.within(THREAD, f)
    }

    /// Starts `f` on a thread that joins this namespace first (and does not run `f` if it
    /// cannot).
    pub fn spawn_within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, TopoError>>, TopoError> {
        self.0.spawn_within(THREAD, f)
    }
}

impl Deref for Netns {
    type Target = NetNs;

    fn deref(&self) -> &NetNs {
        &self.0
    }
}

/// A veth pair between two lab namespaces: `glab<subnet>a` (10.77.`subnet`.1/24) in A and
/// `glab<subnet>b` (.2) in B, both up.
pub fn pair(a: &Netns, b: &Netns, subnet: u8) -> Result<Veth, TopoError> {
    guardian_testbed::pair(a, b, IF_PREFIX, subnet)
}

/// Deletes every `glab-*` namespace (leftovers of a lab that was killed); returns their names.
pub fn sweep_stale() -> Vec<String> {
    guardian_testbed::sweep(PREFIX)
}

/// The `glab-*` namespaces that exist now.
pub fn existing() -> Vec<String> {
    guardian_testbed::existing(PREFIX)
}
