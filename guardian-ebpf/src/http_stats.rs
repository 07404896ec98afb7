//! Responses per service, the map userspace reads (`HTTP_STATS`), and the one function that
//! counts a response into it: shared by the packet programs (`http_skb.rs`), the syscall hook
//! (`http.rs`) and the TLS path (`tls.rs`).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{LruPerCpuHashMap, PerCpuArray},
};
use guardian_common::{
    h2::Tally,
    http::{lat_bucket, HttpKey, HttpStats},
};

/// Responses per service. LRU: services of processes long gone make room.
#[map]
pub static HTTP_STATS: LruPerCpuHashMap<HttpKey, HttpStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// A zeroed `HttpStats` to fill before inserting a new service.
#[map]
static HTTP_SCRATCH: PerCpuArray<HttpStats> = PerCpuArray::with_max_entries(1, 0);

/// One response with status `code` and latency `lat_ns`, for service `k`.
#[inline(always)]
pub(crate) fn count(k: &HttpKey, code: u16, lat_ns: u64) {
    add(k, code, Some(lat_ns));
}

/// One response with status `code` whose latency is not known (HTTP/2: `tls_h2.rs`), for
/// service `k`: counted by status, not in the latency buckets.
#[inline(always)]
pub(crate) fn count_status(k: &HttpKey, code: u16) {
    add(k, code, None);
}

/// The statuses of one HTTP/2 write (`tls_h2.rs`), for service `k`: one map update.
#[inline(always)]
pub(crate) fn count_tally(k: &HttpKey, t: &Tally) {
    if let Some(s) = stats(k) {
        let t = &t.0;
        s.s2xx += u64::from(t[0]);
        s.s3xx += u64::from(t[1]);
        s.s4xx += u64::from(t[2]);
        s.s429 += u64::from(t[3]);
        s.s5xx += u64::from(t[4]);
        s.s500 += u64::from(t[5]);
        s.s502 += u64::from(t[6]);
        s.s503 += u64::from(t[7]);
        s.s504 += u64::from(t[8]);
    }
}

#[inline(always)]
fn add(k: &HttpKey, code: u16, lat_ns: Option<u64>) {
    if let Some(s) = stats(k) {
        match code / 100 {
            2 => s.s2xx += 1,
            3 => s.s3xx += 1,
            4 => {
                s.s4xx += 1;
                if code == 429 {
                    s.s429 += 1;
                }
            }
            5 => {
                s.s5xx += 1;
                match code {
                    500 => s.s500 += 1,
                    502 => s.s502 += 1,
                    503 => s.s503 += 1,
                    504 => s.s504 += 1,
                    _ => {}
                }
            }
            _ => return,
        }
        if let Some(lat_ns) = lat_ns {
            s.lat_sum_ns += lat_ns;
            if let Some(c) = s.lat.get_mut(lat_bucket(lat_ns)) {
                *c += 1;
            }
        }
    }
}

/// Service `k`'s counts, made (zeroed) on its first response. Returned rather than updated
/// through a closure: a closure called from two places was a BPF subprogram, a call on every
/// response.
#[inline(always)]
fn stats(k: &HttpKey) -> Option<&'static mut HttpStats> {
    let p = match HTTP_STATS.get_ptr_mut(k) {
        Some(p) => p,
        None => {
            // The first response of a service: zeroed counts from a per-CPU scratch slot (the
            // value is too big for the 512-byte BPF stack next to the callers' locals),
            // inserted only if no other CPU made them meanwhile, then looked up again.
            let s = HTTP_SCRATCH.get_ptr_mut(0)?;
            // SAFETY: this CPU's scratch slot, a plain value.
            unsafe { core::ptr::write_bytes(s, 0, 1) };
            let _ = HTTP_STATS.insert(k, unsafe { &*s }, BPF_NOEXIST as u64);
            HTTP_STATS.get_ptr_mut(k)?
        }
    };
    // SAFETY: a per-CPU value, which only this CPU writes, valid for the program's run.
    Some(unsafe { &mut *p })
}
