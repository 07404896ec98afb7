//! Types for the DNS signals (tcx): queries and answers by rcode class per resolver, counted in
//! the kernel on the interfaces guardian watches.

/// A resolver: the server address of UDP/53 traffic (destination of a query on egress, source
/// of a response on ingress).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnsKey {
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub _pad: u16,
    /// The interface the traffic was seen on.
    pub ifindex: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<DnsKey>() == 24);

/// Per resolver totals (per-CPU; userspace sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Queries sent (QR = 0, egress, destination port 53).
    pub queries: u64,
    /// Responses (QR = 1, ingress, source port 53) by rcode class.
    pub noerror: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    pub refused: u64,
    /// Any other rcode (FORMERR, NOTIMP, ...).
    pub other: u64,
}
const _: () = assert!(core::mem::size_of::<DnsStats>() == 48);

impl DnsStats {
    /// Every response, whatever its rcode.
    pub fn answers(&self) -> u64 {
        self.noerror + self.nxdomain + self.servfail + self.refused + self.other
    }
}

/// DNS rcodes.
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers, no padding beyond explicit fields.
    unsafe impl aya::Pod for super::DnsKey {}
    unsafe impl aya::Pod for super::DnsStats {}
}
