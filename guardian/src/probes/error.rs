//! Why loading or attaching the probes, or taking one of their maps, failed.

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this guardian binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask build`")]
    NoObject,
    #[error(transparent)]
    Offsets(#[from] super::offsets::OffsetError),
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("program {0} is missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("program {program} could not be loaded or attached to {target}: {source}")]
    Attach {
        program: &'static str,
        target: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error(transparent)]
    Xdp(#[from] super::xdp::XdpError),
    #[error(transparent)]
    Batch(#[from] super::batch::BatchError),
}
