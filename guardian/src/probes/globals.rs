//! The read-only globals of every load of guardian's object: the offsets userspace derives
//! from tracefs and BTF. The verifier prunes the branches their values rule out (a read at an
//! absent offset returns at once), so a load proves what a run would load only with the run's
//! values: doctor's proof loaded without the HTTP offsets and passed `tls_hs_exit` on 6.1,
//! whose verifier refused it in every `--http` run (a stack over its limit on the paths those
//! offsets open).
//!
//! Derived in `probes::derive_globals` (mod.rs), which knows every program family's offsets;
//! this file imports none of them, so that it adds no cycle to the imports.
use aya::EbpfLoader;
use guardian_common::{http::HttpOffsets, shadows::ShadowOffsets, Offsets};

use super::offsets::OffsetError;

pub(super) struct Globals {
    pub offsets: Offsets,
    /// The HTTP programs' (`--http`); an error leaves their reads absent.
    pub http: Result<HttpOffsets, OffsetError>,
    /// The reset programs'; an error leaves them unattached.
    pub shadows: Result<ShadowOffsets, OffsetError>,
}

impl Globals {
    /// Sets them on `loader`.
    pub fn set<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader
            .override_global("OFFSETS", &self.offsets, true)
            .override_global(
                "HTTP_OFFSETS",
                self.http.as_ref().unwrap_or(&HttpOffsets::NONE),
                true,
            )
            .override_global(
                "SHADOW_OFFSETS",
                self.shadows.as_ref().unwrap_or(&ShadowOffsets::NONE),
                true,
            );
    }
}
