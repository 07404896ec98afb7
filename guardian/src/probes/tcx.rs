//! tcx attachment of the DNS programs (ingress and egress) on the interfaces named by `--xdp`,
//! with a clsact (netlink TC filter) fallback on kernels without tcx (before 6.6). On an
//! interface that has guardian's XDP program, that program counts the DNS answers and only
//! the egress one is attached here.
//!
//! tcx attachments are bpf_links: they belong to the link fd and go away when guardian exits,
//! even on SIGKILL, so nothing can be left behind. They are appended to the interface's tcx
//! chain (`LinkOrder::default()`) and return `TCX_NEXT`, so another tool's tcx or clsact
//! programs keep deciding the packets' fate.
//!
//! Where the kernel refuses tcx (6.1: `bpf_mprog_attach failed: Invalid argument`), the
//! programs are attached as direct-action filters under a clsact qdisc, added if absent
//! (and left in place: other tools may share it). Those filters outlive a SIGKILLed
//! guardian, so filters of the same name left by an earlier guardian are removed first.
//! The programs' `TCX_NEXT` (-1) is `TC_ACT_UNSPEC` there: the next filter still decides.
use aya::{
    programs::{
        tc::{self, SchedClassifierLinkId, TcAttachOptions},
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
#[error("attaching {program} (tcx) to {iface}: {source}{}", .fallback.as_ref().map(|f| format!("; clsact fallback: {f}")).unwrap_or_default())]
pub struct TcxError {
    pub program: &'static str,
    pub iface: Box<str>,
    #[source]
    pub source: aya::programs::ProgramError,
    /// Why the clsact fallback failed too, when it was tried.
    pub fallback: Option<Box<String>>,
}

pub struct Attachment {
    pub iface: String,
    pub program: &'static str,
    pub direction: &'static str,
    /// `tcx` or `clsact` (the fallback where the kernel has no tcx).
    pub mode: &'static str,
    link: SchedClassifierLinkId,
}

fn direction(t: TcAttachType) -> &'static str {
    match t {
        TcAttachType::Ingress => "ingress",
        TcAttachType::Egress => "egress",
        TcAttachType::Custom(_) => "custom",
    }
}

/// Attaches the DNS programs to `iface` (the ingress one only with `ingress`: where guardian's
/// XDP program counts the answers, it does not): through tcx, or through clsact where tcx
/// fails.
pub fn attach(ebpf: &mut Ebpf, iface: &str, ingress: bool) -> Result<Vec<Attachment>, TcxError> {
    let mut out = Vec::new();
    for (program, t) in PROGRAMS {
        if !ingress && matches!(t, TcAttachType::Ingress) {
            continue;
        }
        let err = |source| TcxError {
            program,
            iface: iface.into(),
            source,
            fallback: None,
        };
        let prog: &mut SchedClassifier = ebpf
            .program_mut(program)
            .ok_or_else(|| err(aya::programs::ProgramError::NotLoaded))?
            .try_into()
            .map_err(err)?;
        if prog.fd().is_err() {
            prog.load().map_err(err)?;
        }
        let (link, mode) = match prog.attach_with_options(
            iface,
            t,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        ) {
            Ok(link) => (link, "tcx"),
            Err(tcx) => match attach_clsact(prog, program, iface, t) {
                Ok(link) => {
                    tracing::info!(program, iface, tcx_error = %tcx, "tcx is unavailable: attached through clsact");
                    (link, "clsact")
                }
                Err(fallback) => {
                    return Err(TcxError {
                        fallback: Some(Box::new(fallback.to_string())),
                        ..err(tcx)
                    })
                }
            },
        };
        out.push(Attachment {
            iface: iface.to_string(),
            program,
            direction: direction(t),
            mode,
            link,
        });
    }
    Ok(out)
}

/// The fallback: a direct-action filter under the interface's clsact qdisc (added if absent),
/// after removing filters of the same program name an earlier guardian left behind.
fn attach_clsact(
    prog: &mut SchedClassifier,
    program: &str,
    iface: &str,
    t: TcAttachType,
) -> Result<SchedClassifierLinkId, aya::programs::ProgramError> {
    // Fails when the qdisc exists already, which is what we need; a real problem shows in
    // the attach below.
    let _ = tc::qdisc_add_clsact(iface);
    match tc::qdisc_detach_program(iface, t, program) {
        Ok(()) => tracing::warn!(
            program,
            iface,
            "removed a clsact filter left by an earlier guardian"
        ),
        Err(e) => tracing::debug!(program, iface, error = %e, "no stale clsact filter"),
    }
    prog.attach_with_options(iface, t, TcAttachOptions::Netlink(tc::NlOptions::default()))
}

pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Result<(), aya::programs::ProgramError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(a.program)
        .ok_or(aya::programs::ProgramError::NotLoaded)?
        .try_into()?;
    prog.detach(a.link)
}
