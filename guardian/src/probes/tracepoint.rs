//! Loading a program and attaching it to a classic tracepoint: how every tracepoint program of
//! guardian's is attached (the core ones, the reset programs, the bind fallback).
use aya::{
    programs::{trace_point::TracePointLinkId, TracePoint},
    Ebpf,
};

use super::error::ProbeError;

/// Loads program `prog` (unless an earlier attachment did) and attaches it to tracepoint
/// `category:name`.
pub fn attach(
    ebpf: &mut Ebpf,
    prog: &'static str,
    category: &str,
    name: &str,
) -> Result<TracePointLinkId, ProbeError> {
    let err = |source| ProbeError::Attach {
        program: prog,
        target: format!("tracepoint {category}:{name}"),
        source,
    };
    let p: &mut TracePoint = ebpf
        .program_mut(prog)
        .ok_or(ProbeError::MissingProgram(prog))?
        .try_into()
        .map_err(err)?;
    if p.fd().is_err() {
        p.load().map_err(err)?;
    }
    p.attach(category, name).map_err(err)
}
