//! Builds guardian-ebpf (the daemon's programs) for the BPF target with aya-build and leaves the
//! object in OUT_DIR, where `probes::load` embeds it with `include_bytes_aligned!`. The lab's
//! injectors (guardian-lab-ebpf) are built by guardian-lab/build.rs: the daemon does not carry
//! them.
use std::{env, fs, path::PathBuf};

use anyhow::{anyhow, Context as _};

/// The nightly that builds the eBPF crate; `cargo xtask setup` installs it (with rust-src) and
/// may select a compatible fallback through this variable.
const DEFAULT_TOOLCHAIN: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=GUARDIAN_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        // `cargo check`/`clippy`/unit tests without the eBPF toolchain: an empty object that
        // `probes::load` rejects with a clear error if anyone tries to run it.
        let obj = out_dir.join("guardian-ebpf");
        if !obj.exists() {
            fs::write(&obj, []).context("write placeholder eBPF object")?;
        }
        return Ok(());
    }
    let toolchain =
        env::var("GUARDIAN_EBPF_TOOLCHAIN").unwrap_or_else(|_| DEFAULT_TOOLCHAIN.to_string());
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("guardian has no parent directory"))?;
    // aya-build watches the eBPF crate's own folder; the types and parsers it shares with
    // userspace live in guardian-common, whose changes must rebuild the object too (else the
    // daemon embeds a stale one).
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("guardian-common").display()
    );
    let daemon = workspace.join("guardian-ebpf");
    let daemon = daemon.to_str().ok_or_else(|| anyhow!("non UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "guardian-ebpf",
            root_dir: daemon,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .context("building guardian-ebpf (run `cargo xtask setup` to install the eBPF toolchain)")
}
