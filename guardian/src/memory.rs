//! Give the allocator's freed pages back to the kernel once loading is over.
//!
//! Loading parses the kernel's BTF and the embedded eBPF objects: tens of MiB of short-lived
//! allocations. glibc keeps what they freed: its trim threshold grows with the mmap
//! threshold, up to 32 MiB, so an idle daemon kept ~23 MiB of freed heap resident: VmRSS was
//! 43 MiB at idle and 20 MiB after one `malloc_trim(0)` (`cargo xtask bench` measures idle
//! RSS). One call where a burst of freeing has just happened is simpler than a second
//! allocator in the binary.

/// Returns freed heap pages to the kernel (glibc's `malloc_trim(0)`); a no-op elsewhere.
/// Returns whether memory was released.
pub fn release_freed() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointer and only walks the allocator's own arenas,
        // under their locks; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon line")
    }

    #[test]
    fn freed_heap_goes_back_to_the_kernel() {
        // Like the loader: 64 MiB in blocks below the mmap threshold, touched, and every
        // other one freed. The 32 MiB of holes sit between live blocks, where glibc never
        // returns pages by itself (it only trims the heap's top), whatever other test
        // threads allocate meanwhile.
        let mut blocks: Vec<Option<Vec<u8>>> =
            (0..1024).map(|i| Some(vec![i as u8; 64 * 1024])).collect();
        for b in blocks.iter_mut().skip(1).step_by(2) {
            *b = None;
        }
        let before = rss_anon_kib();
        assert!(super::release_freed(), "malloc_trim released nothing");
        let after = rss_anon_kib();
        assert!(
            before.saturating_sub(after) >= 16 * 1024,
            "RssAnon {before} → {after} KiB: less than 16 MiB of the 32 freed came back"
        );
        let live = blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i, b.as_ref()?)));
        assert!(live
            .into_iter()
            .all(|(i, b)| b.iter().all(|&x| x == i as u8)));
    }
}
