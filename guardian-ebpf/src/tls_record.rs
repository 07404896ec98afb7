//! Statuses over TLS without a trap per response (Linux 6.3+, the socket tracepoints of
//! `tls_sock.rs`): the send OpenSSL makes for a batch of records is read through the batch's
//! description in the `SSL` object (`guardian_common::tls_record`), at offsets that this
//! module samples while the `SSL_write` uprobe still runs (`calibrate`) and userspace then sets
//! (`RecordLayout::on`), detaching that uprobe. A trap was the largest cost of a TLS request
//! on this machine (docs/benchmarks.md); a send reads three words and the batch's first 16
//! bytes instead.
//!
//! A batch is read once, at its first send: OpenSSL sends the rest of a batch that the socket
//! did not take (EAGAIN, or a partial send) from the same description, at a later send. The
//! send was asked for `wbuf[0].left` bytes; when it returned fewer, the next send on the
//! socket continues the batch (`TlsSock::cont`). The batch's plaintext is read while OpenSSL
//! is still inside the write that holds it.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user as probe_read_user},
    macros::map,
    maps::{Array, RingBuf},
};
use guardian_common::tls_record::{RecordLayout, Snapshot, PART_WORDS, SCAN_WORDS};

/// Slot 0: the offsets and switches, written by userspace (guardian/src/probes/tls_record.rs).
#[map]
pub static TLS_RECORD: Array<RecordLayout> = Array::with_max_entries(1, 0);

/// Calibration samples for userspace (`Snapshot`: 16 KiB each, so about 15 in flight; when
/// it is full, sends are not sampled until userspace drains it).
#[map]
pub static TLS_RECORD_SNAPS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The offsets and switches.
#[inline(always)]
pub fn layout() -> Option<&'static RecordLayout> {
    TLS_RECORD.get(0)
}

/// A word of user memory at `ssl + off`.
#[inline(always)]
pub fn word(ssl: u64, off: u32) -> Option<u64> {
    // SAFETY: user memory through a probe read.
    unsafe { bpf_probe_read_user((ssl + u64::from(off)) as *const u64) }.ok()
}

/// A calibration sample: the send that followed an `SSL_write(ssl, buf, num)` on the same
/// thread returned `ret`; the first 16 KiB of the `SSL` object go to userspace with them, in
/// four reads (one that fails, past the end of the heap, zeroes its 4 KiB only). No loop: the
/// words are compared in userspace.
#[inline(always)]
pub fn calibrate(ssl: u64, buf: u64, num: u64, ret: i64) {
    let Some(mut e) = TLS_RECORD_SNAPS.reserve::<Snapshot>(0) else {
        return;
    };
    let p = e.as_mut_ptr();
    // SAFETY: the reserved record, written whole before it is submitted; user memory through
    // probe reads of constant sizes within it.
    unsafe {
        (*p).buf = buf;
        (*p).num = num;
        (*p).ret = ret;
        let words = (*p).words.as_mut_ptr();
        for part in 0..SCAN_WORDS / PART_WORDS {
            let at = part * PART_WORDS;
            probe_read_user(
                words.add(at) as *mut c_void,
                (PART_WORDS * 8) as u32,
                (ssl + (at * 8) as u64) as *const c_void,
            );
        }
    }
    e.submit(0);
}

/// The batch a send on a connection whose `SSL *` is `ssl` starts, when it starts one (and
/// `read`): its plaintext's address and first 16 bytes. `cont` is the connection's
/// continuation flag, kept here; `ret` what the send returned.
#[inline(always)]
pub fn batch(
    l: &RecordLayout,
    ssl: u64,
    cont: &mut u32,
    ret: i64,
    read: bool,
) -> Option<(u64, [u8; 16])> {
    let left = word(ssl, l.left)?;
    let fresh = *cont == 0;
    // Fewer bytes than asked (EAGAIN included): the batch goes on at the next send.
    *cont = u32::from(ret < 0 || ret as u64 != left);
    if !fresh || !read {
        return None;
    }
    let buf = word(ssl, l.buf)?;
    // SAFETY: user memory through a probe read.
    let head = unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }.ok()?;
    Some((buf, head))
}
