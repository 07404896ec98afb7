//! Ethernet frames the XDP benchmark feeds to the programs: a TCP SYN as Linux sends it
//! (74 bytes with MSS, SACK, timestamps and window scale options) and a small UDP datagram.
use std::net::Ipv4Addr;

pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xbe, 0x01];
/// A destination MAC no interface has: the stack drops the frame at once as PACKET_OTHERHOST,
/// so the packet-rate benchmark spends its time in the driver and XDP, not in IP.
pub const OTHER_HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xbe, 0x02];

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn ethernet(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP SYN from `src`:40000 to `dst`:`port` (checksum left zero: XDP does not check it).
pub fn syn(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(40);
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
    t.extend_from_slice(&0u32.to_be_bytes()); // ack
    t.extend_from_slice(&[0xa0, 0x02]); // data offset 10 words, SYN
    t.extend_from_slice(&64240u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                                        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    t.extend_from_slice(&[
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    ethernet(dst_mac, &ipv4(src, dst, IPPROTO_TCP, &t))
}

/// A pure TCP ACK from `src`:40000 to `dst`:`port` with timestamps (a 66-byte frame): the most
/// common TCP segment, which the XDP program parses down to the TCP flags.
pub fn ack(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(32);
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&0x0102_0305u32.to_be_bytes()); // seq
    t.extend_from_slice(&0x0a0b_0c0du32.to_be_bytes()); // ack
    t.extend_from_slice(&[0x80, 0x10]); // data offset 8 words, ACK
    t.extend_from_slice(&502u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    t.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1]); // NOP, NOP, timestamps
    ethernet(dst_mac, &ipv4(src, dst, IPPROTO_TCP, &t))
}

/// A UDP datagram with 18 bytes of payload (a 60-byte frame, the Ethernet minimum).
pub fn udp(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut u = Vec::with_capacity(26);
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&port.to_be_bytes());
    u.extend_from_slice(&26u16.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&[0x55; 18]);
    ethernet(dst_mac, &ipv4(src, dst, IPPROTO_UDP, &u))
}

/// A DNS message over UDP from `src`:`sport` to `dst`:`dport`: a query for `example.com` A
/// (`answer` false) or its NOERROR answer header (QR set; no records: only the header is
/// read).
pub fn dns(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, answer: bool) -> Vec<u8> {
    let mut d = vec![0x12, 0x34]; // id
    d.extend_from_slice(if answer { &[0x81, 0x80] } else { &[0x01, 0x00] });
    d.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    d.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    let mut u = Vec::with_capacity(8 + d.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&d);
    ethernet(OTHER_HOST_MAC, &ipv4(src, dst, IPPROTO_UDP, &u))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 77, 200, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 77, 200, 2);

    #[test]
    fn syn_is_a_74_byte_ipv4_tcp_syn() {
        let f = syn(OTHER_HOST_MAC, A, B, 8080);
        assert_eq!(f.len(), 74);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14 + 9], IPPROTO_TCP);
        assert_eq!(f[14 + 20 + 13], 0x02);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8080);
        // A header with its checksum filled in sums to zero.
        assert_eq!(checksum(&f[14..34]), 0);
    }

    #[test]
    fn ack_is_a_66_byte_tcp_ack_without_syn() {
        let f = ack(OTHER_HOST_MAC, A, B, 8080);
        assert_eq!(f.len(), 66);
        assert_eq!(f[14 + 9], IPPROTO_TCP);
        assert_eq!(f[14 + 20 + 13], 0x10);
        assert_eq!(f[14 + 20 + 12] >> 4, 8, "header length matches the options");
        assert_eq!(checksum(&f[14..34]), 0);
    }

    #[test]
    fn udp_is_a_minimum_frame() {
        let f = udp(OTHER_HOST_MAC, A, B, 9);
        assert_eq!(f.len(), 60);
        assert_eq!(f[14 + 9], IPPROTO_UDP);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
    }

    #[test]
    fn dns_frames_carry_the_ports_and_qr() {
        let q = dns(A, B, 40000, 53, false);
        assert_eq!(u16::from_be_bytes([q[36], q[37]]), 53);
        assert_eq!(q[42 + 2] >> 7, 0);
        let r = dns(B, A, 53, 40000, true);
        assert_eq!(u16::from_be_bytes([r[34], r[35]]), 53);
        assert_eq!(r[42 + 2] >> 7, 1);
        assert_eq!(
            usize::from(u16::from_be_bytes([r[38], r[39]])),
            r.len() - 34
        );
    }

    #[test]
    fn parses_macs() {
        assert_eq!(parse_mac("02:00:00:00:be:02"), Some(OTHER_HOST_MAC));
        assert_eq!(parse_mac("02:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:be:02:01"), None);
        assert_eq!(parse_mac("zz:00:00:00:be:02"), None);
    }
}
