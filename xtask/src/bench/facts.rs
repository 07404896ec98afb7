//! Facts about the machine a benchmark ran on, printed before and stored with every result.
use std::fs;

use serde::{Deserialize, Serialize};

use crate::cmd;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    /// `git describe --always --dirty` of the guardian checkout that was measured.
    pub guardian_rev: String,
    /// 1-minute load average when the run started (other work on the machine skews results).
    pub loadavg_1m: f64,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        let rev = cmd::repo_root()
            .ok()
            .and_then(|root| {
                let mut git = cmd::new("git", ["describe", "--always", "--dirty"]);
                git.current_dir(root);
                cmd::stdout(&mut git).ok()
            })
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let loadavg = fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            cpu,
            cores,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            guardian_rev: rev,
            loadavg_1m: loadavg,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "kernel {}, {} ({} cores), {} GiB, guardian {}, load {:.2}",
            self.kernel, self.cpu, self.cores, self.memory_gib, self.guardian_rev, self.loadavg_1m
        )
    }
}
