//! One run of one scenario: build → daemon attached → inject → `opened` → `verified` →
//! stop injecting → `cleared` → daemon stopped → end state checked → namespaces removed.
use std::path::Path;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

use super::daemon::{event_time, is_fault, is_remedy, millis, LabDaemon};
use super::scenario::Spec;
use super::LabError;

/// What one run measured. Times in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: &'static str,
    pub remedy: Option<&'static str>,
    pub run: u32,
    /// Trigger condition first holds → `opened` event.
    pub detection_ms: Option<f64>,
    /// `opened` → the remedy's `verified` event.
    pub heal_ms: Option<f64>,
    /// The remedy verified (always false for detection-only scenarios).
    pub healed: bool,
    /// Remedy events with result `rolled_back` during the run.
    pub rollbacks: u32,
    /// The fault's `cleared` event came after the injection stopped.
    pub cleared: bool,
    /// Why the run did not complete, if it did not.
    pub error: Option<String>,
}

impl RunResult {
    /// Detected, healed (when there is a remedy), cleared, and no error.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.detection_ms.is_some()
            && self.cleared
            && (self.remedy.is_none() || self.healed)
    }
}

/// Runs every spec `runs` times, with a progress bar on stderr.
pub fn run_all(bin: &Path, specs: &[&'static Spec], runs: u32) -> Vec<RunResult> {
    let bar = ProgressBar::new(specs.len() as u64 * u64::from(runs));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut out = Vec::new();
    for spec in specs {
        for run in 1..=runs {
            bar.set_message(format!("{} #{run}", spec.fault));
            let r = run_one(bin, spec, run);
            if !r.ok() {
                let why = r
                    .error
                    .clone()
                    .unwrap_or_else(|| "the fault did not clear".into());
                // Printed even when the bar is hidden (stderr not a terminal).
                bar.suspend(|| eprintln!("{} #{run} failed: {why}", spec.fault));
            }
            out.push(r);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    out
}

pub fn run_one(bin: &Path, spec: &'static Spec, run: u32) -> RunResult {
    let mut r = RunResult {
        scenario: spec.fault,
        remedy: spec.remedy,
        run,
        detection_ms: None,
        heal_ms: None,
        healed: false,
        rollbacks: 0,
        cleared: false,
        error: None,
    };
    if let Err(e) = measure(bin, spec, &mut r) {
        r.error = Some(guardian::errors::sentence(&anyhow::Error::new(e)));
    }
    r
}

fn ts(e: &Value) -> Result<SystemTime, LabError> {
    event_time(e).ok_or_else(|| LabError::Other(format!("an event without a valid ts: {e}")))
}

fn measure(bin: &Path, spec: &'static Spec, r: &mut RunResult) -> Result<(), LabError> {
    let t = std::time::Instant::now();
    let phase = |what: &str| tracing::debug!(scenario = spec.fault, "{what} at {:?}", t.elapsed());
    let mut sc = (spec.build)()?;
    phase("built");
    let mut d = LabDaemon::start(bin, sc.daemon_ns(), &sc.plan())?;
    d.wait_for(0, "`attached` event", Duration::from_secs(60), |e| {
        e["type"] == "lifecycle" && e["phase"] == "attached"
    })?;
    phase("attached");
    let n = d.count();
    let fault = spec.fault;
    let t0 = sc.inject()?;
    phase("injected");
    let (_, opened) = d.wait_for(n, &format!("{fault} opened"), spec.detect_timeout, |e| {
        is_fault(e, fault, "opened")
    })?;
    let t_open = ts(&opened)?;
    r.detection_ms = Some(millis(t0, t_open).max(0.0));
    let incident = opened["incident"].clone();
    if let Some(remedy) = spec.remedy {
        let inc = incident.clone();
        let (_, verified) =
            d.wait_for(n, &format!("{remedy} verified"), spec.heal_timeout, |e| {
                is_remedy(e, remedy, "verified") && e["incident"] == inc
            })?;
        r.heal_ms = Some(millis(t_open, ts(&verified)?));
        r.healed = true;
    }
    phase("healed");
    sc.stop()?;
    let inc = incident.clone();
    let cleared = d.wait_for(n, &format!("{fault} cleared"), spec.clear_timeout, |e| {
        is_fault(e, fault, "cleared") && e["incident"] == inc
    });
    r.cleared = cleared.is_ok();
    phase("cleared");
    let events = d.stop()?;
    phase("stopped");
    r.rollbacks = events
        .iter()
        .skip(n)
        .filter(|e| e["type"] == "remedy" && e["result"] == "rolled_back")
        .count() as u32;
    drop(d);
    cleared?;
    sc.check_end()?;
    drop(sc);
    phase("removed");
    Ok(())
}
