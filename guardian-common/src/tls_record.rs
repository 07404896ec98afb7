//! OpenSSL's record layer, read from the socket tracepoints instead of a uprobe on every
//! `SSL_write` (guardian-ebpf/src/tls_record.rs). While OpenSSL sends a batch of records
//! (`do_ssl3_write`, then `ssl3_write_pending`), its `SSL` object holds where the batch's
//! plaintext is (`rlayer.wpend_buf`), how long it is (`rlayer.wpend_tot`) and how many bytes of
//! the encrypted batch the send was asked for (`rlayer.wbuf[0].left`). With those three, the
//! send that the socket tracepoint sees carries the status line as well as the uprobe did.
//!
//! Their offsets are private to each OpenSSL build, so none is compiled in: while the uprobe
//! still runs, the send after an `SSL_write` that left a status copies the first
//! [`SCAN_WORDS`] words of its `SSL` object, with the `SSL_write`'s buffer and length and the
//! send's result, to userspace ([`Snapshot`]), which counts per word where each value was
//! found ([`Calibration`], [`fold`]) and takes the one word each was found at in nearly every
//! sample ([`decide`]), or keeps the uprobe.

/// How far into an `SSL` object the calibration looks, in 8-byte words (16 KiB: OpenSSL 3.0's
/// `wpend_buf` is at about 7.2 KiB).
pub const SCAN_WORDS: usize = 2048;

/// What a calibration sample looks for: the `SSL_write`'s buffer, its length (when it fits one
/// record), the send's result (when it sent something).
pub const CAL_BUF: usize = 0;
pub const CAL_TOT: usize = 1;
pub const CAL_LEFT: usize = 2;
pub const CAL_KINDS: usize = 3;

/// Samples per kind after which userspace gives up (one per connection).
pub const CAL_MAX: u32 = 64;
/// Samples per kind before userspace decides: connections, each with its own `SSL` object,
/// so that a word next to one that holds the same value by chance is told apart.
pub const CAL_MIN: u32 = 8;
/// A plaintext length that fits one record: the first batch of the write is all of it.
pub const ONE_RECORD: u64 = 16384;

/// The offsets in use (bytes into the `SSL` object) and the two switches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordLayout {
    /// `rlayer.wpend_buf`.
    pub buf: u32,
    /// `rlayer.wpend_tot`.
    pub tot: u32,
    /// `rlayer.wbuf[0].left`.
    pub left: u32,
    /// 1: the socket tracepoints read statuses through the offsets, and the `SSL_write` uprobe
    /// does nothing.
    pub on: u32,
    /// 1: sends after an `SSL_write` that left a status are scanned ([`Calibration`]).
    pub calibrate: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<RecordLayout>() == 24);

/// The words of a snapshot copied by one probe read (4 KiB): a read that fails (past the end
/// of the heap) zeroes its part only.
pub const PART_WORDS: usize = 512;

/// One sample: the `SSL_write`'s buffer and length, what its send returned, and the first
/// words of its `SSL` object at that send.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Snapshot {
    pub buf: u64,
    pub num: u64,
    pub ret: i64,
    pub words: [u64; SCAN_WORDS],
}
const _: () = assert!(core::mem::size_of::<Snapshot>() == 24 + 8 * SCAN_WORDS);

/// Counts sample `s`: every word that holds the buffer, the length (when the write fits one
/// record: then its first batch is all of it) or the send's result (when it sent something).
pub fn fold(c: &mut Calibration, s: &Snapshot) {
    let want_tot = s.num > 0 && s.num <= ONE_RECORD;
    let want_left = s.ret > 0;
    c.samples[CAL_BUF] += 1;
    c.samples[CAL_TOT] += u32::from(want_tot);
    c.samples[CAL_LEFT] += u32::from(want_left);
    for (w, v) in s.words.iter().enumerate() {
        if *v == s.buf {
            c.hits[CAL_BUF][w] += 1;
        } else if want_tot && *v == s.num {
            c.hits[CAL_TOT][w] += 1;
        }
        if want_left && *v == s.ret as u64 {
            c.hits[CAL_LEFT][w] += 1;
        }
    }
}

/// Per kind and word, the samples whose value was found there; then the samples per kind.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Calibration {
    pub hits: [[u32; SCAN_WORDS]; CAL_KINDS],
    pub samples: [u32; CAL_KINDS],
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Calibration>() == 4 * (3 * SCAN_WORDS + 4));

/// The first word found in nearly every sample of a kind (7 of 8: a send that flushed an
/// earlier write's rest, or sent only part of its batch, does not hold the value), when no
/// word before it was found in half of them. Words after it are not weighed: past the end of
/// the `SSL` object the scan reads the heap, where the objects an application allocates with
/// each connection (nginx's own buffer records) may hold the same values. `near`: the strong
/// word closest to it instead, whatever else holds the value (`tot`, near `wpend_buf`:
/// `wpend_tot` and `wpend_ret` hold the same length; a length is a small number that other
/// fields hold too, in clients' `SSL` objects for one).
fn word(hits: &[u32; SCAN_WORDS], samples: u32, near: Option<usize>) -> Option<usize> {
    if samples < CAL_MIN {
        return None;
    }
    let strong = |h: u32| h * 8 >= samples * 7;
    let weak = |h: u32| h * 2 >= samples;
    if let Some(n) = near {
        return (hits.iter().enumerate())
            .filter(|(_, h)| strong(**h))
            .min_by_key(|(w, _)| w.abs_diff(n))
            .map(|(w, _)| w);
    }
    let first = hits.iter().position(|h| weak(*h))?;
    strong(hits[first]).then_some(first)
}

/// The offsets, when every kind has enough samples and one word each.
pub fn decide(c: &Calibration) -> Option<RecordLayout> {
    let buf = word(&c.hits[CAL_BUF], c.samples[CAL_BUF], None)?;
    let tot = word(&c.hits[CAL_TOT], c.samples[CAL_TOT], Some(buf))?;
    let left = word(&c.hits[CAL_LEFT], c.samples[CAL_LEFT], None)?;
    if tot == buf || left == buf || left == tot {
        return None;
    }
    Some(RecordLayout {
        buf: (buf * 8) as u32,
        tot: (tot * 8) as u32,
        left: (left * 8) as u32,
        on: 1,
        calibrate: 0,
        _pad: 0,
    })
}

/// Whether every kind has all the samples it gets.
pub fn exhausted(c: &Calibration) -> bool {
    c.samples.iter().all(|s| *s >= CAL_MAX)
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            hits: [[0; SCAN_WORDS]; CAL_KINDS],
            samples: [0; CAL_KINDS],
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) integers, padding explicit.
    unsafe impl aya::Pod for super::RecordLayout {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Calibration {
        Calibration::default()
    }

    fn snap(buf: u64, num: u64, ret: i64) -> Snapshot {
        let mut s = Snapshot {
            buf,
            num,
            ret,
            words: [0; SCAN_WORDS],
        };
        s.words[3264 / 8] = 3;
        s.words[3272 / 8] = ret as u64;
        s.words[7384 / 8] = num;
        s.words[7400 / 8] = num;
        s.words[7408 / 8] = buf;
        s
    }

    #[test]
    fn folded_snapshots_name_the_words() {
        let mut c = cal();
        for i in 0..CAL_MIN as u64 {
            // A buffer per write, lengths that vary, one send that took nothing (EAGAIN).
            let ret = if i == 5 { -11 } else { 60 + i as i64 };
            fold(&mut c, &snap(0x5555_0000_0000 + i * 4096, 38 + i, ret));
        }
        // A write too long for one record: its length is not looked for.
        let mut big = snap(0x5555_1000_0000, 40_000, 16_406);
        big.words[7384 / 8] = 16_384;
        big.words[7400 / 8] = 16_384;
        fold(&mut c, &big);
        assert_eq!(c.samples, [CAL_MIN + 1, CAL_MIN, CAL_MIN]);
        let l = decide(&c).unwrap();
        assert_eq!((l.buf, l.tot, l.left), (7408, 7400, 3272));
    }

    /// OpenSSL 3.0.19 (Debian 12): wpend_buf +7408, wpend_tot +7384 and wpend_ret +7400 (the
    /// same length), wbuf[0].left +3272.
    fn debian(n: u32) -> Calibration {
        let mut c = cal();
        c.samples = [n; CAL_KINDS];
        c.hits[CAL_BUF][7408 / 8] = n;
        c.hits[CAL_TOT][7384 / 8] = n;
        c.hits[CAL_TOT][7400 / 8] = n;
        c.hits[CAL_LEFT][3272 / 8] = n - 1;
        c
    }

    #[test]
    fn finds_openssl_3_0s_words() {
        let l = decide(&debian(20)).unwrap();
        assert_eq!((l.buf, l.tot, l.left, l.on), (7408, 7400, 3272, 1));
    }

    #[test]
    fn waits_for_enough_samples() {
        assert_eq!(decide(&debian(CAL_MIN - 1)), None);
    }

    #[test]
    fn a_word_before_in_half_the_samples_is_ambiguous() {
        let mut c = debian(20);
        c.hits[CAL_LEFT][100] = 10;
        assert_eq!(decide(&c), None);
        // A coincidence in fewer is ignored.
        c.hits[CAL_LEFT][100] = 9;
        assert!(decide(&c).is_some());
    }

    #[test]
    fn the_heap_after_the_object_is_not_weighed() {
        // nginx's buffer records after the `SSL` object hold the buffer too, in some
        // connections or in all (seen here: +15040, +15568, +15600).
        let mut c = debian(20);
        c.hits[CAL_BUF][15040 / 8] = 11;
        c.hits[CAL_BUF][15568 / 8] = 20;
        assert_eq!(decide(&c).map(|l| l.buf), Some(7408));
        // One before it that always holds it is taken: it cannot be told from the real one.
        c.hits[CAL_BUF][5] = 20;
        assert_eq!(decide(&c).map(|l| l.buf), Some(40));
        c.hits[CAL_BUF][5] = 12;
        assert_eq!(decide(&c), None);
    }

    #[test]
    fn a_word_found_too_rarely_is_no_answer() {
        let mut c = debian(24);
        // 20 of 24 is under 7 of 8.
        c.hits[CAL_LEFT][3272 / 8] = 20;
        assert_eq!(decide(&c), None);
        assert!(!exhausted(&c));
        c.samples = [CAL_MAX; CAL_KINDS];
        assert!(exhausted(&c));
    }

    #[test]
    fn the_length_is_the_strong_word_nearest_the_buffer() {
        let mut c = debian(16);
        c.hits[CAL_TOT][4792 / 8] = 8;
        c.hits[CAL_TOT][10] = 16;
        assert_eq!(decide(&c).map(|l| l.tot), Some(7400));
    }

    #[test]
    fn one_word_for_two_values_is_refused() {
        let mut c = debian(20);
        c.hits[CAL_LEFT] = [0; SCAN_WORDS];
        c.hits[CAL_LEFT][7400 / 8] = 20;
        c.hits[CAL_TOT][7400 / 8] = 0;
        c.hits[CAL_TOT][7384 / 8] = 0;
        c.hits[CAL_TOT][7400 / 8] = 20;
        assert_eq!(decide(&c), None);
    }
}
