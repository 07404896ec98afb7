//! tcx attachment of the DNS programs (ingress and egress) on the interfaces named by `--xdp`.
//!
//! tcx attachments are bpf_links: they belong to the link fd and go away when guardian exits,
//! even on SIGKILL, so nothing can be left behind. They are appended to the interface's tcx
//! chain (`LinkOrder::default()`) and return `TCX_NEXT`, so another tool's tcx or clsact
//! programs keep deciding the packets' fate.
use aya::{
    programs::{
        tc::{SchedClassifierLinkId, TcAttachOptions},
        LinkOrder, SchedClassifier, TcAttachType,
    },
    Ebpf,
};

/// (program, direction).
pub const PROGRAMS: [(&str, TcAttachType); 2] = [
    ("guardian_dns_egress", TcAttachType::Egress),
    ("guardian_dns_ingress", TcAttachType::Ingress),
];

#[derive(Debug, thiserror::Error)]
#[error("attaching {program} (tcx) to {iface}: {source}")]
pub struct TcxError {
    pub program: &'static str,
    pub iface: String,
    #[source]
    pub source: aya::programs::ProgramError,
}

pub struct Attachment {
    pub iface: String,
    pub program: &'static str,
    pub direction: &'static str,
    link: SchedClassifierLinkId,
}

fn direction(t: TcAttachType) -> &'static str {
    match t {
        TcAttachType::Ingress => "ingress",
        TcAttachType::Egress => "egress",
        TcAttachType::Custom(_) => "custom",
    }
}

/// Attaches both DNS programs to `iface`.
pub fn attach(ebpf: &mut Ebpf, iface: &str) -> Result<Vec<Attachment>, TcxError> {
    let mut out = Vec::new();
    for (program, t) in PROGRAMS {
        let err = |source| TcxError {
            program,
            iface: iface.to_string(),
            source,
        };
        let prog: &mut SchedClassifier = ebpf
            .program_mut(program)
            .ok_or_else(|| err(aya::programs::ProgramError::NotLoaded))?
            .try_into()
            .map_err(err)?;
        if prog.fd().is_err() {
            prog.load().map_err(err)?;
        }
        let link = prog
            .attach_with_options(iface, t, TcAttachOptions::TcxOrder(LinkOrder::default()))
            .map_err(err)?;
        out.push(Attachment {
            iface: iface.to_string(),
            program,
            direction: direction(t),
            link,
        });
    }
    Ok(out)
}

pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Result<(), aya::programs::ProgramError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(a.program)
        .ok_or(aya::programs::ProgramError::NotLoaded)?
        .try_into()?;
    prog.detach(a.link)
}
