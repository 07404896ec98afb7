//! Peers on one workload: guardian, a bpftrace one-liner on `tcp:tcp_retransmit_skb`, and
//! libbpf-tools `tcpstates` (Debian's libbpf-tools package: CO-RE, no kernel headers needed),
//! all attached at once while namespace A sends a bulk transfer to B through 3 % random
//! ingress loss (nftables in B) and churns short connections to a second port. For each tool:
//! the CPU time its process used over the workload (/proc/PID/stat utime+stime; the time its
//! kernel programs run is charged to the tasks they interrupt, not to the tool) and its
//! counts against the kernel's own `nstat` deltas in A.
use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use guardian_tests::{bulk_send, connect_n, in_netns, nft, nstat, pair, DiscardServer, Netns};
use serde_json::json;

use super::daemon::{cpu_seconds, Guardian};
use super::report::{Measured, Table};
use super::Ctx;
use guardian_tests::TempDir;

const SUBNET: u8 = 204;
const BULK_PORT: u16 = 20204;
const CHURN_PORT: u16 = 20205;
const LOSS_PERCENT: u8 = 3;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let a = Netns::new("bench-peer-a");
    let b = Netns::new("bench-peer-b");
    let v = pair(&a, &b, SUBNET);
    let bulk_addr = SocketAddr::V4(SocketAddrV4::new(v.b_addr, BULK_PORT));
    let churn_addr = SocketAddr::V4(SocketAddrV4::new(v.b_addr, CHURN_PORT));
    let bulk_srv = DiscardServer::start(&b, bulk_addr);
    let churn_srv = DiscardServer::start(&b, churn_addr);
    nft::drop_random_tcp(&b, BULK_PORT, LOSS_PERCENT);
    let tmp = TempDir::new("bench-peers");

    let mut g = Guardian::start(&ctx.guardian, &a, &[])?;
    let filter = format!("args->sport == {BULK_PORT} || args->dport == {BULK_PORT} || args->sport == {CHURN_PORT} || args->dport == {CHURN_PORT}");
    let script =
        format!("tracepoint:tcp:tcp_retransmit_skb /{filter}/ {{ @retransmits = count(); }}");
    let mut bt = Tool::start("bpftrace", &["-e", &script], &tmp, "Attaching")?;
    let ports = format!("{BULK_PORT},{CHURN_PORT}");
    let mut ts = Tool::start("tcpstates", &["-D", &ports], &tmp, "")?;
    // tcpstates prints its header once attached.
    std::thread::sleep(Duration::from_secs(2));

    let (bytes, conns) = if ctx.quick {
        (64 << 20, 1000)
    } else {
        (256 << 20, 3000)
    };
    let nstat_a0 = nstat(&a);
    let cpu0 = [
        cpu_seconds(g.pid())?,
        cpu_seconds(bt.pid())?,
        cpu_seconds(ts.pid())?,
    ];
    let t0 = std::time::Instant::now();
    let bulk = in_netns(&a, move || {
        bulk_send(bulk_addr, bytes, Duration::from_secs(60))
    });
    let churn = in_netns(&a, move || {
        connect_n(churn_addr, conns, Duration::from_secs(2))
    });
    let bulk = bulk
        .join()
        .map_err(|_| anyhow::anyhow!("bulk sender panicked"))??;
    let opened = churn
        .join()
        .map_err(|_| anyhow::anyhow!("churn panicked"))?;
    let wall = t0.elapsed().as_secs_f64();
    // Let the tail of retransmits and closes land in every tool.
    std::thread::sleep(Duration::from_secs(2));
    let cpu1 = [
        cpu_seconds(g.pid())?,
        cpu_seconds(bt.pid())?,
        cpu_seconds(ts.pid())?,
    ];
    let nstat_a1 = nstat(&a);
    let bt_out = bt.stop()?;
    let ts_out = ts.stop()?;
    g.stop()?;
    bulk_srv.stop();
    churn_srv.stop();
    if !bulk.complete {
        bail!(
            "the bulk transfer did not complete in 60 s ({} bytes sent)",
            bulk.sent
        );
    }

    let d = |k: &str| {
        nstat_a1
            .get(k)
            .unwrap_or(&0)
            .saturating_sub(*nstat_a0.get(k).unwrap_or(&0))
    };
    let (k_retrans, k_active) = (d("TcpRetransSegs"), d("TcpActiveOpens"));
    let netns = a.inode();
    let fin = g
        .lines_with("\"final\":true")?
        .into_iter()
        .find(|e| e["netns"].as_u64() == Some(netns))
        .context("guardian wrote no final counters for the workload's namespace")?;
    let g_retrans = fin["retrans_segs"].as_u64().unwrap_or(0);
    let bt_retrans = bt_out
        .lines()
        .find_map(|l| l.strip_prefix("@retransmits:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let (ts_all, ts_syn_sent) = transitions(&ts_out);

    let mut t1 = Table::new(
        &format!(
            "Workload: {:.0} MiB bulk transfer through {LOSS_PERCENT} % ingress loss + {opened} \
             short connections, {wall:.1} s; tools attached together",
            bytes as f64 / 1048576.0
        ),
        &[
            "tool",
            "what it counts",
            "its count",
            "kernel (nstat Δ in A)",
            "CPU time (s)",
        ],
    );
    let cpu = |i: usize| format!("{:.3}", cpu1[i] - cpu0[i]);
    t1.row(&[
        "guardian run (all programs)".to_string(),
        "retransmitted segments (`retrans_segs`)".into(),
        g_retrans.to_string(),
        format!("TcpRetransSegs {k_retrans}"),
        cpu(0),
    ]);
    t1.row(&[
        "bpftrace one-liner".to_string(),
        "`tcp_retransmit_skb` hits on the two ports".into(),
        bt_retrans.to_string(),
        format!("TcpRetransSegs {k_retrans}"),
        cpu(1),
    ]);
    t1.row(&[
        "libbpf-tools tcpstates -D".to_string(),
        format!("CLOSE → SYN_SENT (all transitions: {ts_all})"),
        ts_syn_sent.to_string(),
        format!("TcpActiveOpens {k_active}"),
        cpu(2),
    ]);
    let g_cpu = cpu1[0] - cpu0[0];
    let peer_cpu = (cpu1[1] - cpu0[1]) + (cpu1[2] - cpu0[2]);
    Ok(Measured {
        tables: vec![t1],
        headline: vec![(
            "Peers on one retransmit + churn workload: CPU s (guardian / bpftrace / tcpstates), retransmits counted vs nstat".into(),
            format!(
                "{g_cpu:.2} / {:.2} / {:.2} s; guardian {g_retrans}, bpftrace {bt_retrans}, kernel {k_retrans}",
                cpu1[1] - cpu0[1],
                cpu1[2] - cpu0[2]
            ),
        )],
        notes: vec![
            "bpftrace counts `tcp_retransmit_skb` calls: one per retransmitted skb, which may \
             carry several segments (GSO), and including attempts that fail before the kernel \
             counts them; guardian counts segments the way `TcpRetransSegs` does."
                .into(),
            format!(
                "guardian does everything else too (13 other detectors, the heal engine); the \
                 two peers together used {peer_cpu:.2} s for two counts."
            ),
        ],
        raw: json!({"cpu_s": [g_cpu, cpu1[1]-cpu0[1], cpu1[2]-cpu0[2]], "guardian_retrans": g_retrans,
            "bpftrace_retrans": bt_retrans, "tcpstates_transitions": ts_all,
            "tcpstates_close_syn_sent": ts_syn_sent, "nstat_retrans": k_retrans,
            "nstat_active_opens": k_active, "connections": opened, "bulk_bytes": bulk.sent,
            "wall_s": wall}),
        ..Default::default()
    })
}

/// (all transitions, CLOSE → SYN_SENT) in tcpstates' output (`... OLDSTATE -> NEWSTATE MS`).
fn transitions(out: &str) -> (u64, u64) {
    let mut all = 0;
    let mut syn_sent = 0;
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // The header line has `OLDSTATE -> NEWSTATE`.
        if let Some(i) = f
            .iter()
            .position(|x| *x == "->")
            .filter(|&i| i > 0 && f[i - 1] != "OLDSTATE")
        {
            all += 1;
            if f[i - 1] == "CLOSE" && f.get(i + 1) == Some(&"SYN_SENT") {
                syn_sent += 1;
            }
        }
    }
    (all, syn_sent)
}

/// A tracing tool run in the host namespace (tracing is global), stdout to a file.
struct Tool {
    child: Option<Child>,
    out: std::path::PathBuf,
    name: &'static str,
}

impl Tool {
    /// Starts `name ARGS`; waits up to 30 s for `ready` in its output (if not empty).
    fn start(name: &'static str, args: &[&str], tmp: &TempDir, ready: &str) -> Result<Tool> {
        let out = tmp.path().join(format!("{name}.out"));
        let child = Command::new(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(
                tmp.path().join(format!("{name}.err")),
            )?)
            .spawn()
            .with_context(|| format!("starting {name} (cargo xtask setup installs it)"))?;
        let tool = Tool {
            child: Some(child),
            out,
            name,
        };
        let ok = guardian_tests::poll(Duration::from_secs(30), Duration::from_millis(100), || {
            let text = std::fs::read_to_string(&tool.out).unwrap_or_default();
            text.contains(ready).then_some(())
        });
        if ok.is_none() {
            bail!("{name} did not print `{ready}` within 30 s");
        }
        Ok(tool)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGINT (both tools print their results and exit on it), wait, return the output.
    fn stop(&mut self) -> Result<String> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGINT) };
            let done =
                guardian_tests::poll(Duration::from_secs(10), Duration::from_millis(50), || {
                    c.try_wait().ok().flatten()
                });
            if done.is_none() {
                let _ = c.kill();
                let _ = c.wait();
                bail!("{} did not exit within 10 s of SIGINT", self.name);
            }
        }
        Ok(std::fs::read_to_string(&self.out)?)
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_tcpstates_transitions() {
        let out = "SKADDR           C-PID C-COMM     LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS\n\
                   ffff9fd7e8192000 22384 curl       100.66.100.185  0     52.33.159.26    80    CLOSE       -> SYN_SENT    0.000\n\
                   ffff9fd7e8192000 0     swapper/5  100.66.100.185  63446 52.33.159.26    80    SYN_SENT    -> ESTABLISHED 1.373\n";
        assert_eq!(super::transitions(out), (2, 1));
    }
}
