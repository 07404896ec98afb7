//! The detectors' input side: [`Input`], the feed that carries it and the recorder.
//!
//! The detectors themselves, their ids, configs and shared plumbing are the fault
//! catalogue, [`crate::faults`]; the names below are re-exported from there so that
//! `crate::detect::{Finding, Detector, ...}` keep working.
pub mod feed;
pub mod input;
pub mod record;

pub use crate::faults::{
    all, incidents, observe_all, tracker, window, Baseline, DetectConfig, Detector, FaultId,
    Finding,
};
pub use input::Input;
