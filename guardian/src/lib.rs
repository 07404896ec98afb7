//! guardian: watches the kernel's network stack through eBPF and heals layer 2-4 faults.
//!
//! The pipeline, one module per concern:
//! `probes` (load/attach, offsets) → `source` (ring buffer, counter maps) and `netlink`
//! (links, routes) → `detect` (pure detectors) → `remedy` (plans) → `engine` (safety, apply,
//! verify, roll back) → `journal` (write-ahead) and `output` (NDJSON).
pub mod cli;
pub mod config;
pub mod detect;
pub mod doctor;
pub mod engine;
pub mod errors;
pub mod journal;
pub mod lab;
pub mod netlink;
pub mod netns;
pub mod output;
pub mod preflight;
pub mod probes;
pub mod remedy;
pub mod replay;
pub mod rollback;
pub mod run;
pub mod source;
pub mod sysctl;
