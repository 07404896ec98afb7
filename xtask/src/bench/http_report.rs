//! The `http` benchmark's samples and the tables, headline figures and goals made from them.
use serde_json::{json, Value};

use super::http::{Plan, CONFIGS, WORKLOADS};
use super::http_attr::{attribution_tables, Attribution};
use super::http_load::{WrkRun, CONNECTIONS};
use super::http_sys::{by_group, GROUPS};
use super::report::{Measured, Table};
use super::stats::{median, meets, rel_spread, spread};

/// Clock ticks per second (`/proc/PID/stat` times are in these).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The throughput ratio guardian `--http` must keep, plaintext and TLS.
pub const GOAL: f64 = 0.97;
/// "Nothing measurable" while idle: the daemon's extra CPU with `--http`, % of one core.
pub const IDLE_GOAL_PCT: f64 = 0.1;

pub struct Workload {
    pub key: &'static str,
    pub label: &'static str,
    pub tls: bool,
    pub close: bool,
}

/// Per configuration (index of `CONFIGS`), per round.
pub struct Samples {
    /// [config][workload] → requests/s per round.
    rps: Vec<Vec<Vec<f64>>>,
    /// [config][workload] → CPU ns per request per round.
    ns: Vec<Vec<Vec<f64>>>,
    errors: u64,
    idle_pct: Vec<Vec<f64>>,
    file_ns: Vec<Vec<f64>>,
    tcp_ns: Vec<Vec<f64>>,
    http_ns: Vec<Vec<f64>>,
    pub raw: Vec<Value>,
}

impl Samples {
    pub fn new(configs: usize, workloads: usize) -> Samples {
        let grid = || vec![vec![Vec::new(); workloads]; configs];
        Samples {
            rps: grid(),
            ns: grid(),
            errors: 0,
            idle_pct: vec![Vec::new(); configs],
            file_ns: vec![Vec::new(); configs],
            tcp_ns: vec![Vec::new(); configs],
            http_ns: vec![Vec::new(); configs],
            raw: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push_load(
        &mut self,
        c: usize,
        w: usize,
        round: usize,
        r: WrkRun,
        ns: f64,
        nginx_cpu: f64,
        daemon_cpu: f64,
    ) {
        self.rps[c][w].push(r.rps());
        self.ns[c][w].push(ns);
        self.errors += r.errors;
        self.raw.push(json!({"round": round, "config": CONFIGS[c].0,
            "workload": WORKLOADS[w].key, "requests": r.requests, "secs": r.secs,
            "errors": r.errors, "wrk_cpu_s": r.cpu_s, "nginx_cpu_s": nginx_cpu,
            "daemon_cpu_s": daemon_cpu, "cpu_ns_per_request": ns}));
    }

    /// The idle window and the three loops (file read+write, TCP and HTTP ping-pong).
    pub fn push_quiet(&mut self, c: usize, round: usize, idle: Option<f64>, loops: [f64; 3]) {
        let [file, tcp, http] = loops;
        self.idle_pct[c].extend(idle);
        self.file_ns[c].push(file);
        self.tcp_ns[c].push(tcp);
        self.http_ns[c].push(http);
        self.raw.push(json!({"round": round, "config": CONFIGS[c].0,
            "idle_daemon_cpu_pct": idle, "file_rw_ns": file, "tcp_round_trip_ns": tcp,
            "http_request_ns": http}));
    }

    fn med_rps(&self, c: usize, w: usize) -> f64 {
        median(&self.rps[c][w])
    }

    fn med_ns(&self, c: usize, w: usize) -> f64 {
        median(&self.ns[c][w])
    }

    /// The widest spread (%, half range over median) of requests/s and of CPU per request,
    /// with no guardian and with configuration `c`, in workload `w`: how far apart two runs
    /// of one setup landed, against which a ratio of medians is read.
    fn noise(&self, c: usize, w: usize) -> f64 {
        [
            &self.rps[0][w],
            &self.rps[c][w],
            &self.ns[0][w],
            &self.ns[c][w],
        ]
        .iter()
        .map(|xs| rel_spread(xs))
        .fold(0.0, f64::max)
    }
}

/// The goal's verdict on a ratio pair measured with `noise` (%) (`stats::meets`).
fn verdict(ratios: (f64, f64), noise: f64) -> bool {
    meets(GOAL, &[ratios.0, ratios.1], noise)
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.3}", a / b)
}

pub fn measured(plan: &Plan, s: &Samples, a: &Attribution) -> Measured {
    let (none, run, http, peer, floor, packets, plain) = (0, 1, 2, 3, 4, 5, 6);
    let mut head: Vec<&str> = vec!["workload"];
    head.extend(CONFIGS.iter().map(|c| c.1));
    let mut tput = Table::new(
        &format!(
            "nginx serving a 300-byte file to `wrk -t1 -c{CONNECTIONS} -d{}s` from another \
             namespace, {} rounds, the {} configurations interleaved: requests/s, median \
             (spread)",
            plan.secs,
            plan.rounds,
            CONFIGS.len()
        ),
        &[
            &head[..],
            &[
                "--http / none",
                "--http-no-tls / none",
                "run / none",
                "bpftrace / none",
                "no-op / none",
                "packet no-op / none",
            ],
        ]
        .concat(),
    );
    let mut cpu = Table::new(
        "CPU time per request: nginx + wrk + the daemon, user + system, over each run ÷ its \
         requests (median of the rounds, ns)",
        &[
            &head[..],
            &[
                "--http − none",
                "--http-no-tls − none",
                "--http − run",
                "bpftrace − none",
                "no-op − none",
                "packet no-op − none",
                "none ÷ --http (CPU-bound ratio)",
            ],
        ]
        .concat(),
    );
    for (w, wl) in WORKLOADS.iter().enumerate() {
        let mut t = vec![wl.label.to_string()];
        let mut c = vec![wl.label.to_string()];
        for k in 0..CONFIGS.len() {
            let sp = spread(&s.rps[k][w], 0);
            let sp = sp.split_once(' ').map_or("", |x| x.1);
            t.push(format!("{:.0} {sp}", s.med_rps(k, w)));
            c.push(format!("{:.0}", s.med_ns(k, w)));
        }
        for k in [http, plain, run, peer, floor, packets] {
            t.push(ratio(s.med_rps(k, w), s.med_rps(none, w)));
        }
        for (x, y) in [
            (http, none),
            (plain, none),
            (http, run),
            (peer, none),
            (floor, none),
            (packets, none),
        ] {
            c.push(format!("{:+.0}", s.med_ns(x, w) - s.med_ns(y, w)));
        }
        c.push(ratio(s.med_ns(none, w), s.med_ns(http, w)));
        tput.row(&t);
        cpu.row(&c);
    }
    let mut quiet = Table::new(
        &format!(
            "Before nginx's load (no TIME_WAIT left by it), the same rounds and order: the \
             daemon's CPU over {} s idle (/proc/PID/stat), mean of the rounds, then three \
             loops of small syscalls in the benchmark's own process (CPU per operation, \
             rusage), median of the rounds: two that carry no HTTP, and HTTP requests over \
             loopback",
            plan.idle_secs
        ),
        &[&[""], &head[1..], &["--http − run"]].concat(),
    );
    let med = |v: &Vec<Vec<f64>>, c: usize| median(&v[c]);
    // The idle windows are as long as each other: their mean is the pooled figure, resolved
    // to one clock tick over all of them (a median would be resolved to one window's tick).
    let idle = |c: usize| mean(&s.idle_pct[c]);
    let tick_pct = 100.0 / clock_ticks() / (plan.rounds as f64 * plan.idle_secs as f64);
    let cell = |x: f64, d: usize| {
        if x.is_nan() {
            "–".to_string()
        } else {
            format!("{x:.d$}")
        }
    };
    let mut row = vec!["daemon CPU, idle (% of one core)".to_string()];
    row.extend((0..CONFIGS.len()).map(|k| cell(idle(k), 2)));
    row.push(format!("{:+.2}", idle(http) - idle(run)));
    quiet.row(&row);
    for (label, v) in [
        (
            format!(
                "read(2) 1 byte of /dev/zero + write(2) it to /dev/null, ×{} (ns per pair)",
                plan.file_ops
            ),
            &s.file_ns,
        ),
        (
            format!(
                "TCP ping-pong on 127.0.0.1, 64 bytes, ×{} (ns per round trip)",
                plan.tcp_trips
            ),
            &s.tcp_ns,
        ),
        (
            format!(
                "HTTP/1.1 on 127.0.0.1, keep-alive: send(2) a request, recv(2) it, writev(2) \
                 the response, recv(2) it, ×{} (ns per request)",
                plan.tcp_trips
            ),
            &s.http_ns,
        ),
    ] {
        let mut row = vec![label];
        row.extend((0..CONFIGS.len()).map(|k| cell(med(v, k), 0)));
        row.push(format!("{:+.0}", med(v, http) - med(v, run)));
        quiet.row(&row);
    }
    let (attr, progs) = attribution_tables(a);
    let idle_runs = a.rows.first().map_or(0.0, |(_, secs, d)| {
        by_group(d)
            .iter()
            .filter(|(g, _)| **g != GROUPS[2])
            .map(|(_, (n, _))| *n as f64)
            .sum::<f64>()
            / secs.max(1.0)
    });
    let idle_bpf = a
        .rows
        .first()
        .map(|(_, secs, d)| {
            by_group(d)
                .iter()
                .filter(|(g, _)| **g != GROUPS[2])
                .map(|(_, (_, t))| *t as f64)
                .sum::<f64>()
                / secs.max(1.0)
                / 1e9
                * 100.0
        })
        .unwrap_or(0.0);
    let (pk, tk) = (0, 1);
    let (p_ratio, t_ratio) = (
        s.med_rps(http, pk) / s.med_rps(none, pk),
        s.med_rps(http, tk) / s.med_rps(none, tk),
    );
    let (p_ns, t_ns) = (
        s.med_ns(http, pk) - s.med_ns(none, pk),
        s.med_ns(http, tk) - s.med_ns(none, tk),
    );
    let idle_diff = idle(http) - idle(run);
    // Plaintext only: the packet programs, no syscall hook and no uprobes.
    let (q_ratio, q_cpu, q_ns) = (
        s.med_rps(plain, pk) / s.med_rps(none, pk),
        s.med_ns(none, pk) / s.med_ns(plain, pk),
        s.med_ns(plain, pk) - s.med_ns(none, pk),
    );
    let idle_bound = IDLE_GOAL_PCT.max(tick_pct);
    let (p_noise, t_noise, q_noise) = (s.noise(http, pk), s.noise(http, tk), s.noise(plain, pk));
    let margin = (1.0 - GOAL) * 100.0;
    let (p_cpu, t_cpu) = (
        s.med_ns(none, pk) / s.med_ns(http, pk),
        s.med_ns(none, tk) / s.med_ns(http, tk),
    );
    let mut notes = vec![
        format!(
            "The requests/s ratios carry the spread of a shared machine; the CPU time per \
             request is steadier. If nginx and wrk were CPU-bound on cores of their own, \
             throughput would scale as CPU per request: none ÷ --http = {p_cpu:.3} \
             (plaintext) and {t_cpu:.3} (TLS), keep-alive."
        ),
        format!(
            "wrk saw {} socket errors or non-2xx responses over all rounds.",
            s.errors
        ),
        format!(
            "While idle, the new programs (syscall hook and uprobes) ran {idle_runs:.0} \
             times a second for {idle_bpf:.2} % of one CPU, on the machine's other processes' \
             syscalls (the hook is system-wide; the machine was shared, see the load)."
        ),
    ];
    // What the syscall hook costs with nothing in its program: the floor of reading HTTP from
    // the syscalls, whoever does it.
    let floor_ns = s.med_ns(floor, pk) - s.med_ns(none, pk);
    let floor_ratio = s.med_ns(none, pk) / s.med_ns(floor, pk);
    if let Some((_, units, d)) = a.rows.get(1 + pk) {
        let runs = by_group(d).get(GROUPS[0]).map_or(0.0, |x| x.0 as f64) / units.max(1.0);
        notes.push(format!(
            "Plaintext keep-alive: a no-op program on the same hook (every syscall's exit), \
             attached as guardian attaches its own, adds {floor_ns:+.0} ns per request (CPU \
             ratio {floor_ratio:.3}): the floor of reading HTTP from the syscalls on this \
             machine, whatever the program does ({runs:.1} runs per request). guardian's \
             programs add {:+.0} ns over that floor (--http − no-op).",
            s.med_ns(http, pk) - s.med_ns(floor, pk)
        ));
    }
    // The other hook HTTP could be counted at: every socket's packets (cgroup_skb), empty.
    let packets_ns = s.med_ns(packets, pk) - s.med_ns(none, pk);
    notes.push(format!(
        "Plaintext keep-alive: a no-op program on every socket's packets (cgroup_skb, ingress \
         and egress of the root cgroup) adds {packets_ns:+.0} ns per request (CPU ratio \
         {:.3}): the floor of counting HTTP at the packet level instead, before any parse, \
         against {floor_ns:+.0} ns for the syscall hook's.",
        s.med_ns(none, pk) / s.med_ns(packets, pk)
    ));
    // Uprobe hits per TLS keep-alive request, from the attribution pass (row 0 is idle).
    if let Some((_, units, d)) = a.rows.get(1 + tk) {
        let d = by_group(d);
        let hits = d.get(GROUPS[1]).map_or(0.0, |x| x.0 as f64) / units.max(1.0);
        let bpf = d.get(GROUPS[1]).map_or(0.0, |x| x.1 as f64) / units.max(1.0);
        let peer_ns = s.med_ns(peer, tk) - s.med_ns(none, tk);
        // Half a hit per request at least: after the record layer's switch only stray calls
        // (a handshake's, the odd client's) are left, and a ratio per hit means nothing.
        if hits >= 0.5 {
            let ours_ns = s.med_ns(http, tk) - s.med_ns(run, tk);
            notes.push(format!(
                "TLS keep-alive: {hits:.1} uprobe hits per request (nginx's and wrk's libssl \
                 calls). bpftrace's empty programs on the entries of the same functions add \
                 {peer_ns:+.0} ns per request, {:.0} ns per hit: a breakpoint trap, then a \
                 single-step trap over the displaced instruction. guardian's entry-only probes \
                 sit on an instruction the kernel emulates (no single step), and --http adds \
                 {ours_ns:+.0} ns per request over guardian run in all (syscall hook \
                 included), its uprobe programs themselves running {bpf:.0} ns per request.",
                peer_ns / hits
            ));
        }
    }
    Measured {
        tables: vec![tput, cpu, quiet, attr, progs],
        headline: vec![
            (
                "nginx keep-alive, guardian run --http vs none, plaintext / TLS: requests/s \
                 ratio of medians (CPU per request, none ÷ --http), the rounds' widest spread"
                    .into(),
                format!(
                    "{p_ratio:.3} ({p_cpu:.3}) ±{p_noise:.0} % / {t_ratio:.3} ({t_cpu:.3}) \
                     ±{t_noise:.0} %"
                ),
            ),
            (
                "Extra CPU per HTTP request with guardian run --http, plaintext / TLS".into(),
                format!("{p_ns:+.0} ns / {t_ns:+.0} ns"),
            ),
            (
                "nginx keep-alive, guardian run --http --http-no-tls (plaintext from the \
                 packets alone) vs none: requests/s ratio (CPU per request ratio), extra CPU \
                 per request"
                    .into(),
                format!("{q_ratio:.3} ({q_cpu:.3}), {q_ns:+.0} ns"),
            ),
        ],
        goals: vec![
            (
                format!(
                    "plaintext keep-alive, --http vs none ≥ {GOAL}, both by requests/s \
                     ({p_ratio:.3}) and by CPU per request ({p_cpu:.3}), with rounds that \
                     agree within ±{margin:.0} % (±{p_noise:.1} %)"
                ),
                verdict((p_ratio, p_cpu), p_noise),
            ),
            (
                format!(
                    "plaintext keep-alive, --http --http-no-tls vs none ≥ {GOAL}, both by \
                     requests/s ({q_ratio:.3}) and by CPU per request ({q_cpu:.3}), with \
                     rounds that agree within ±{margin:.0} % (±{q_noise:.1} %)"
                ),
                verdict((q_ratio, q_cpu), q_noise),
            ),
            (
                format!(
                    "TLS keep-alive, --http vs none ≥ {GOAL}, both by requests/s ({t_ratio:.3}) \
                     and by CPU per request ({t_cpu:.3}), with rounds that agree within \
                     ±{margin:.0} % (±{t_noise:.1} %)"
                ),
                verdict((t_ratio, t_cpu), t_noise),
            ),
            (
                format!(
                    "idle: the daemon with --http costs no more than without, within \
                     {idle_bound:.2} points of a core (the larger of {IDLE_GOAL_PCT} and one \
                     clock tick over the idle windows): {idle_diff:+.2} points"
                ),
                // "Within": a difference equal to the bound passes (the means move in steps
                // of one clock tick over the windows, and 0.2 - 0.1 is not 0.1 in floats).
                idle_diff <= idle_bound + 1e-9,
            ),
        ],
        notes,
        raw: Value::Null,
    }
}
