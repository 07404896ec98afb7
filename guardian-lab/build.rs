//! Builds guardian-lab-ebpf (the lab's fault injectors) for the BPF target with aya-build and
//! leaves the object in OUT_DIR, where `inject` embeds it with `include_bytes_aligned!`. The
//! daemon's own programs (guardian-ebpf) are built by guardian/build.rs.
use std::{env, fs, path::PathBuf};

use anyhow::{anyhow, Context as _};

/// The nightly that builds the eBPF crate; `cargo xtask setup` installs it (with rust-src) and
/// may select a compatible fallback through this variable. Same default as guardian/build.rs.
const DEFAULT_TOOLCHAIN: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=GUARDIAN_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        // `cargo check`/`clippy`/unit tests without the eBPF toolchain: an empty object that
        // `inject` rejects with a clear error if anyone tries to run the lab.
        let obj = out_dir.join("guardian-lab-ebpf");
        if !obj.exists() {
            fs::write(&obj, []).context("write placeholder eBPF object")?;
        }
        return Ok(());
    }
    let toolchain =
        env::var("GUARDIAN_EBPF_TOOLCHAIN").unwrap_or_else(|_| DEFAULT_TOOLCHAIN.to_string());
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let lab = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("guardian-lab has no parent directory"))?
        .join("guardian-lab-ebpf");
    let lab = lab.to_str().ok_or_else(|| anyhow!("non UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "guardian-lab-ebpf",
            root_dir: lab,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .context("building guardian-lab-ebpf (run `cargo xtask setup` to install the eBPF toolchain)")
}
