//! guardian: watches the kernel's network stack through eBPF and heals layer 2-4 faults.
//!
//! The pipeline, one module per concern:
//! `probes` (load/attach, offsets) → `source` (ring buffer, counter maps) and `netlink`
//! (links, routes) → `detect` (pure detectors) → `remedy` (plans) → `engine` (safety, apply,
//! verify, roll back) → `journal` (write-ahead) and `output` (NDJSON).
pub mod cli;
pub mod cmd;
pub mod config;
pub mod control;

pub mod doctor;
pub mod engine;
pub mod errors;
pub mod faults;
pub mod health;
pub mod input;
pub mod journal;
pub mod lock;
pub mod logging;
pub mod memory;
pub mod metrics_server;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod notify;
pub mod output;
pub mod owner;
pub mod preflight;
pub mod privileges;
pub mod probes;
pub mod record;
pub mod remedy;
pub mod replay;
pub mod rollback;
pub mod run;
pub mod scan;
pub mod shed;
pub mod source;
pub mod sysctl;

#[cfg(test)]
mod floors;
