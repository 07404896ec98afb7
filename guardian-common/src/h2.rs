//! HTTP/2 as a server writes it into `SSL_write` (guardian-ebpf/src/tls_h2.rs): the frames'
//! headers (RFC 9113 §4.1), and the `:status` of a response's HEADERS frame (RFC 7541, HPACK)
//! as nginx encodes it: an index into HPACK's static table (200, 204, 206, 304, 400, 404,
//! 500), or a literal with the static `:status` name and a raw three-digit value (every
//! other code). A status that an encoder sends as a reference into its own dynamic table, or
//! Huffman-coded, is not decoded (nginx does neither for `:status`).
use crate::http::{HttpKey, TlsKey};

/// Bytes of a frame header.
pub const FRAME_HEADER: u64 = 9;
/// Frame types.
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
/// HEADERS flags that put bytes before the header block.
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;
/// Bytes of a HEADERS payload the status parse reads: pad length (1), priority (5), and the
/// status field with an optional table size update before it (6).
pub const BLOCK_HEAD: usize = 12;
/// Frames one `SSL_write` is walked through; a write with more loses the connection's place
/// in the stream (counted as an `h2_desync` loss; the connection is no longer read).
pub const MAX_FRAMES: u32 = 48;

/// A frame header's fields that the walk needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Payload length (24 bits).
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
}

/// The frame header in the first 9 bytes of `h` (only the first 5 are read).
#[inline(always)]
pub fn frame(h: &[u8]) -> Option<Frame> {
    if h.len() < 5 {
        return None;
    }
    Some(Frame {
        len: (u32::from(h[0]) << 16) | (u32::from(h[1]) << 8) | u32::from(h[2]),
        kind: h[3],
        flags: h[4],
    })
}

/// Whether a write that starts with frame header `h` starts a server's connection preface: a
/// SETTINGS frame (not an acknowledgment) on stream 0, whose payload is whole settings. A
/// client's preface starts with the `PRI * HTTP/2.0` magic instead, so this is the server's
/// side of a connection.
#[inline(always)]
pub fn is_server_preface(h: &[u8; 9]) -> bool {
    let Some(f) = frame(h) else {
        return false;
    };
    f.kind == SETTINGS
        && f.flags == 0
        && f.len % 6 == 0
        && f.len <= 6 * 16
        && h[5] & 0x7f == 0
        && h[6] == 0
        && h[7] == 0
        && h[8] == 0
}

/// Where the header block starts in a HEADERS payload with `flags`.
#[inline(always)]
pub fn block_offset(flags: u8) -> usize {
    usize::from(flags & FLAG_PADDED != 0) + if flags & FLAG_PRIORITY != 0 { 5 } else { 0 }
}

/// The `:status` at the start of a response's header block `b`, or None (a request's, a
/// trailer's, or an encoding this parser does not decode).
#[inline(always)]
pub fn status(b: &[u8; 6]) -> Option<u16> {
    // A dynamic table size update that fits the 5-bit prefix (nginx sends `0x20`, size 0,
    // before its first header block) may precede the first field.
    let skip = usize::from(b[0] & 0xe0 == 0x20 && b[0] != 0x3f);
    let f = b[skip];
    // Indexed field, static entries 8 to 14 (a match, not a table: an index into read-only
    // data is pointer arithmetic the verifier wants bounded in a way LLVM does not keep).
    let indexed = match f {
        0x88 => 200,
        0x89 => 204,
        0x8a => 206,
        0x8b => 304,
        0x8c => 400,
        0x8d => 404,
        0x8e => 500,
        _ => 0,
    };
    if indexed != 0 {
        return Some(indexed);
    }
    // Literal with the static `:status` name (index 8): with incremental indexing (0x48),
    // without indexing (0x08), never indexed (0x18); then a raw (not Huffman) length of 3.
    if !matches!(f, 0x48 | 0x08 | 0x18) || b[skip + 1] != 3 {
        return None;
    }
    // The digits end at byte 4, or 5 after a size update: within the 6 bytes read.
    let d = |c: u8| c.is_ascii_digit().then_some(u16::from(c - b'0'));
    Some(d(b[skip + 2])? * 100 + d(b[skip + 3])? * 10 + d(b[skip + 4])?)
}

/// Where a connection's frames stand between two `SSL_write`s, per (process, `SSL *`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct H2Conn {
    /// Bytes of the current frame's payload still to come in the next write.
    pub skip: u64,
    /// Bytes of a frame header that the last write ended inside of (0..=8).
    pub part: u32,
    /// 1 when the last `SSL_write`'s socket write failed with EAGAIN: the next `SSL_write` on
    /// the connection is its retry, whose first `walked` bytes are those already walked
    /// (OpenSSL lets a retry pass more bytes than the failed call: nginx appends to its
    /// buffer before it tries again).
    pub again: u32,
    /// The first five bytes of that split header as far as they came (length, type, flags).
    pub head: [u8; 5],
    pub _pad: [u8; 3],
    /// The length of the last `SSL_write` walked.
    pub walked: u64,
    /// The connection's service, once the write(2) after one of its `SSL_write`s named the
    /// socket (`known` 1): from then on its statuses are counted in the uprobe, however many
    /// a write carries.
    pub svc: HttpKey,
    pub known: u32,
}
const _: () = assert!(core::mem::size_of::<H2Conn>() == 64);

/// The bytes of an `SSL_write` of `num` bytes that are still to walk: all of them, or after a
/// failed call of `walked` bytes (`again`), those past its end (none for a plain retry).
#[inline(always)]
pub fn to_walk(again: bool, walked: u64, num: u64) -> (u64, u64) {
    if !again {
        return (0, num);
    }
    if num <= walked {
        return (num, 0);
    }
    (walked, num - walked)
}

/// The `SSL_write` a thread is in (or was last in), on a followed connection: its key, and the
/// fd of the first write(2) after it (`u64::MAX` until then), the connection's socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct H2Call {
    pub key: H2Key,
    pub fd: u64,
}

/// Whether a frame header read where the walk expects one is one: a known type (DATA 0 to
/// CONTINUATION 9) on a stream its type allows (stream frames on a stream, connection frames
/// on stream 0). Anything else means the walk lost its place.
#[inline(always)]
pub fn plausible(h: &[u8; 9]) -> bool {
    let stream = (u32::from(h[5] & 0x7f) << 24)
        | (u32::from(h[6]) << 16)
        | (u32::from(h[7]) << 8)
        | u32::from(h[8]);
    match h[3] {
        // DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION.
        0 | 1 | 2 | 3 | 5 | 9 => stream != 0,
        // SETTINGS, PING, GOAWAY.
        4 | 6 | 7 => stream == 0,
        // WINDOW_UPDATE: either.
        8 => true,
        _ => false,
    }
}

/// The map key of a connection (the TLS uprobes' own).
pub type H2Key = TlsKey;

/// The statuses of one `SSL_write`, waiting for the write(2) that names their socket
/// (guardian-ebpf/src/tls.rs `TLS_PENDING`), packed in a u64: up to [`PENDING_MAX`] codes of
/// 12 bits, and their number in the top 4 bits. Only until a connection's service is known
/// (its first write with statuses, as a rule); a sixth status of such a write is lost. An HTTP/1.x status is stored as the bare code
/// (number 0), so both kinds share the map.
pub const PENDING_MAX: u32 = 5;

/// `v` with `code` added (unchanged when full).
#[inline(always)]
pub fn pending_push(v: u64, code: u16) -> u64 {
    let n = (v >> 60) as u32;
    if n >= PENDING_MAX {
        return v;
    }
    let slot = u64::from(code & 0xfff) << (12 * n);
    ((v & ((1 << 60) - 1)) | slot) | (u64::from(n + 1) << 60)
}

/// The number of HTTP/2 statuses packed in `v` (0: `v` is one HTTP/1.x code).
#[inline(always)]
pub fn pending_len(v: u64) -> u32 {
    (v >> 60) as u32
}

/// The `i`th packed status.
#[inline(always)]
pub fn pending_code(v: u64, i: u32) -> u16 {
    ((v >> (12 * (i % PENDING_MAX))) & 0xfff) as u16
}

/// The statuses of one write, counted by the fields of `HttpStats` they go to (2xx, 3xx, 4xx,
/// 429, 5xx, 500, 502, 503, 504): a connection whose service is known adds them in one map
/// update after the walk (guardian-ebpf/src/http_stats.rs `count_tally`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally(pub [u32; 9]);

impl Tally {
    /// One final status (>= 200; others are not responses and are left out).
    #[inline(always)]
    pub fn add(&mut self, code: u16) {
        let t = &mut self.0;
        match code / 100 {
            2 => t[0] += 1,
            3 => t[1] += 1,
            4 => {
                t[2] += 1;
                if code == 429 {
                    t[3] += 1;
                }
            }
            5 => {
                t[4] += 1;
                match code {
                    500 => t[5] += 1,
                    502 => t[6] += 1,
                    503 => t[7] += 1,
                    504 => t[8] += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Whether any status was added.
    #[inline(always)]
    pub fn any(&self) -> bool {
        self.0[0] | self.0[1] | self.0[2] | self.0[4] != 0
    }
}

/// The first five bytes of a frame header split by a write boundary: `part` of them (1..=8)
/// came with the last write and were kept in `head`, the rest start this write (`rest`).
/// Constant indexes only (the verifier reads no stack slot at a variable offset).
#[inline(always)]
pub fn join_head(head: &[u8; 5], rest: &[u8; 9], part: u32) -> [u8; 5] {
    match part {
        1 => [head[0], rest[0], rest[1], rest[2], rest[3]],
        2 => [head[0], head[1], rest[0], rest[1], rest[2]],
        3 => [head[0], head[1], head[2], rest[0], rest[1]],
        4 => [head[0], head[1], head[2], head[3], rest[0]],
        _ => *head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b6(v: &[u8]) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[..v.len()].copy_from_slice(v);
        b
    }

    #[test]
    fn reads_the_status_as_nginx_encodes_it() {
        // Static table: 200 and 404, with nginx's table size update before the first block.
        assert_eq!(status(&b6(&[0x88, 0x76])), Some(200));
        assert_eq!(status(&b6(&[0x20, 0x8d])), Some(404));
        assert_eq!(status(&b6(&[0x8e])), Some(500));
        // Literal, raw length 3: 502, 429 (and after a size update), 503 never indexed.
        assert_eq!(status(&b6(b"\x48\x03502")), Some(502));
        assert_eq!(status(&b6(b"\x20\x48\x03429")), Some(429));
        assert_eq!(status(&b6(b"\x18\x03503")), Some(503));
        assert_eq!(status(&b6(b"\x08\x03103")), Some(103));
    }

    #[test]
    fn leaves_what_it_cannot_decode() {
        // Huffman-coded value, a dynamic table reference, a request's `:method GET`, a
        // trailer's field, a literal of another length.
        assert_eq!(status(&b6(&[0x48, 0x82, 0x10, 0x01])), None);
        assert_eq!(status(&b6(&[0xbe])), None);
        assert_eq!(status(&b6(&[0x82, 0x86])), None);
        assert_eq!(status(&b6(&[0x40, 0x0a])), None);
        assert_eq!(status(&b6(b"\x48\x0450")), None);
        assert_eq!(status(&b6(b"\x48\x035x2")), None);
    }

    #[test]
    fn frames_and_the_server_preface() {
        // nginx's first write: SETTINGS with 3 settings (18 bytes), stream 0.
        let settings = [0, 0, 18, SETTINGS, 0, 0, 0, 0, 0];
        assert!(is_server_preface(&settings));
        assert_eq!(
            frame(&settings),
            Some(Frame {
                len: 18,
                kind: SETTINGS,
                flags: 0
            })
        );
        // A SETTINGS acknowledgment, a partial setting, another stream, a HEADERS frame.
        assert!(!is_server_preface(&[0, 0, 0, SETTINGS, 1, 0, 0, 0, 0]));
        assert!(!is_server_preface(&[0, 0, 7, SETTINGS, 0, 0, 0, 0, 0]));
        assert!(!is_server_preface(&[0, 0, 6, SETTINGS, 0, 0, 0, 0, 1]));
        assert!(!is_server_preface(&[0, 0, 6, HEADERS, 4, 0, 0, 0, 1]));
        // The client's magic is not a server preface.
        assert!(!is_server_preface(b"PRI * HTT"));
        assert_eq!(frame(&[1, 0, 0, 0, 0]).unwrap().len, 65536);
        assert_eq!(frame(&[0, 0]), None);
    }

    #[test]
    fn pending_statuses_pack_and_unpack() {
        assert_eq!(pending_len(502), 0, "an HTTP/1.x code is bare");
        let mut v = 0;
        for c in [200, 404, 502, 429, 503, 504] {
            v = pending_push(v, c);
        }
        assert_eq!(pending_len(v), PENDING_MAX, "the sixth is dropped");
        let mut got = [0u16; 5];
        for (i, g) in got.iter_mut().enumerate() {
            *g = pending_code(v, i as u32);
        }
        assert_eq!(got, [200, 404, 502, 429, 503]);
        assert_eq!(pending_code(pending_push(0, 999), 0), 999);
    }

    #[test]
    fn a_split_header_is_joined() {
        let whole = [0u8, 1, 2, HEADERS, 0x4, 0, 0, 0, 1];
        for part in 1..=8u32 {
            let mut head = [0u8; 5];
            for (i, h) in head.iter_mut().enumerate().take(part as usize) {
                *h = whole[i];
            }
            let mut rest = [0u8; 9];
            for (i, r) in rest.iter_mut().enumerate() {
                *r = *whole.get(part as usize + i).unwrap_or(&0xff);
            }
            assert_eq!(join_head(&head, &rest, part), whole[..5], "part {part}");
        }
    }

    #[test]
    fn a_tally_counts_by_class_and_named_code() {
        let mut t = Tally::default();
        assert!(!t.any());
        for c in [
            200, 204, 304, 404, 429, 500, 502, 503, 503, 504, 599, 103, 0,
        ] {
            t.add(c);
        }
        assert!(t.any());
        assert_eq!(t.0, [2, 1, 2, 1, 6, 1, 1, 2, 1]);
    }

    #[test]
    fn a_retry_walks_only_what_the_failed_call_did_not_have() {
        assert_eq!(to_walk(false, 100, 300), (0, 300), "not a retry: all");
        assert_eq!(
            to_walk(true, 300, 300),
            (300, 0),
            "the same bytes again: none"
        );
        assert_eq!(to_walk(true, 300, 200), (200, 0));
        // nginx appended 500 bytes to its buffer before trying again.
        assert_eq!(to_walk(true, 300, 800), (300, 500));
    }

    #[test]
    fn frame_headers_that_make_sense() {
        assert!(plausible(&[0, 0, 9, HEADERS, 4, 0, 0, 0, 1]));
        assert!(plausible(&[0, 64, 0, 0, 0, 0, 0, 0, 3]), "DATA on stream 3");
        assert!(plausible(&[0, 0, 18, SETTINGS, 0, 0, 0, 0, 0]));
        assert!(plausible(&[0, 0, 4, 8, 0, 0, 0, 0, 0]), "WINDOW_UPDATE");
        // Stream frames on stream 0, connection frames on a stream, unknown types: bytes of
        // a body, not a frame header.
        assert!(!plausible(&[0, 0, 9, HEADERS, 4, 0, 0, 0, 0]));
        assert!(!plausible(&[0, 0, 8, 6, 0, 0, 0, 0, 1]));
        assert!(!plausible(b"012345678"));
    }

    #[test]
    fn header_block_offsets() {
        assert_eq!(block_offset(0x4 | 0x1), 0);
        assert_eq!(block_offset(FLAG_PADDED), 1);
        assert_eq!(block_offset(FLAG_PRIORITY | 0x4), 5);
        assert_eq!(block_offset(FLAG_PADDED | FLAG_PRIORITY), 6);
        assert!(block_offset(FLAG_PADDED | FLAG_PRIORITY) + 6 <= BLOCK_HEAD);
    }
}
