//! How guardian's maps key an address.

/// An address as guardian's maps key it: (`AF_INET` or `AF_INET6`, 16 bytes with IPv4 in the
/// first four).
pub fn family_addr(addr: std::net::IpAddr) -> (u16, [u8; 16]) {
    let mut out = [0u8; 16];
    match addr {
        std::net::IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (guardian_common::AF_INET, out)
        }
        std::net::IpAddr::V6(a) => (guardian_common::AF_INET6, a.octets()),
    }
}
