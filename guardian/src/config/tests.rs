//! Every config error an operator can make, with the exact sentence they get, and the drop-in
//! merge order.
use std::path::{Path, PathBuf};

use super::*;
use crate::remedy::RemedyMode;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("guardian-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The error for a main file with `text`, with the directory replaced by `D`.
fn err_of(tag: &str, text: &str) -> String {
    let d = Dir::new(tag);
    let main = d.write("guardian.toml", text);
    let e = load(Some(&main), None).unwrap_err().to_string();
    e.replace(&d.0.display().to_string(), "D")
}

#[test]
fn every_section_parses() {
    let d = Dir::new("all");
    let main = d.write(
        "guardian.toml",
        r#"
        [detect.syn_flood]
        [remedies]
        modes = { link_up = "observe" }
        [safety]
        protected_ports = [22, 443]
        max_targets = 4
        [sinks]
        stdout = true
        file = "/var/log/guardian/events.ndjson"
        max_bytes = 1048576
        keep = 3
        [log]
        level = "guardian=debug,info"
        format = "json"
        [metrics]
        enabled = true
        listen = "[::1]:9464"
        [interfaces]
        xdp = ["eth0"]
        keep_up = ["eth0", "eth1"]
        [control]
        socket = "/run/guardian/g.sock"
        [daemon]
        state_dir = "/var/lib/g"
        interval_ms = 500
        mode = "enforce"
        verify_timeout_ms = 3000
        host = "node-1"
        "#,
    );
    let c = load(Some(&main), None).unwrap();
    assert_eq!(c.safety.protected_ports, [22, 443]);
    assert_eq!(c.remedies.mode_of("link_up"), RemedyMode::Observe);
    assert!(c.sinks.stdout_on());
    assert_eq!(c.sinks.keep, 3);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.interfaces.keep_up, ["eth0", "eth1"]);
    assert_eq!(c.daemon.mode, crate::model::Mode::Enforce);
    assert_eq!(c.daemon.interval_ms, 500);
    assert_eq!(c.files, [main]);
}

#[test]
fn every_error_names_file_line_key_and_expectation() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str)] = &[
        ("unknown-key", "[safety]\nmax_tragets = 4\n",
         "D/guardian.toml:2:1: safety.max_tragets: unknown field `max_tragets`, expected one of"),
        ("unknown-section", "[sinkz]\nfile = \"x\"\n",
         "D/guardian.toml:1:2: sinkz: unknown field `sinkz`, expected one of `detect`, `remedies`, `safety`, `sinks`, `log`, `metrics`, `interfaces`, `control`, `daemon`"),
        ("wrong-type", "[safety]\nmax_targets = \"four\"\n",
         "D/guardian.toml:2:15: safety.max_targets: invalid type: string \"four\", expected usize"),
        ("wrong-type-detect", "[detect.syn_flood]\nwindow_ms = -1\n",
         "D/guardian.toml:2:13: detect.syn_flood.window_ms: invalid value: integer `-1`, expected u64"),
        ("bad-enum", "[daemon]\nmode = \"sometimes\"\n",
         "D/guardian.toml:2:8: daemon.mode: unknown variant `sometimes`, expected `observe` or `enforce`"),
        ("out-of-range", "[safety]\nmax_targets = 0\n",
         "D/guardian.toml:2:15: safety.max_targets: expected at least 1"),
        ("bad-protected-source", "[safety]\nprotected_sources = [\"local\", \"10.0.0.0/33\"]\n",
         "D/guardian.toml:2:21: safety.protected_sources: \"10.0.0.0/33\" is not an address, a prefix like 10.0.0.0/8, or one of gateways, resolvers, local, handshaking"),
        ("out-of-range-fraction", "[safety]\nmin_confidence = 3.0\n",
         "D/guardian.toml:2:18: safety.min_confidence: expected a fraction between 0 and 1"),
        ("interval", "[daemon]\ninterval_ms = 5\n",
         "D/guardian.toml:2:15: daemon.interval_ms: 5 is out of range; expected 10 to 3600000 ms"),
        ("rotation", "[sinks]\nmax_bytes = 100\n",
         "D/guardian.toml:2:13: sinks.max_bytes: 100 is too small; expected 0 (never rotate) or at least 4096 bytes"),
        ("unknown-remedy", "[remedies]\nmodes = { link_upp = \"off\" }\n",
         "D/guardian.toml:2:22: remedies.modes.link_upp: unknown remedy \"link_upp\"; expected one of"),
        ("bad-remedy-mode", "[remedies.modes]\nlink_up = \"sometimes\"\n",
         "D/guardian.toml:2:11: remedies.modes.link_up: unknown variant `sometimes`, expected one of `enforce`, `observe`, `off`"),
        ("bad-address", "[metrics]\nlisten = \"localhost\"\n",
         "D/guardian.toml:2:10: metrics.listen: \"localhost\" is not an address:port like 127.0.0.1:9464 or [::1]:9464"),
        ("remote-address", "[metrics]\nlisten = \"0.0.0.0:9464\"\n",
         "D/guardian.toml:2:10: metrics.listen: 0.0.0.0:9464 is not a loopback address; expected 127.0.0.1 or ::1, or set metrics.allow_remote = true to expose it"),
        ("bad-route", "[safety]\nprotected_routes = [\"10.0.0.0/33\"]\n",
         "D/guardian.toml:2:20: safety.protected_routes: \"10.0.0.0/33\" is not a prefix like 10.0.0.0/8 or \"default\""),
        ("bad-iface", "[interfaces]\nkeep_up = [\"eth0:1\"]\n",
         "D/guardian.toml:2:11: interfaces.keep_up: \"eth0:1\" is not an interface name; expected 1 to 15 bytes without '/', ':' or spaces"),
        ("long-iface", "[interfaces]\nxdp = [\"a-very-long-iface-name\"]\n",
         "D/guardian.toml:2:7: interfaces.xdp: \"a-very-long-iface-name\" is not an interface name"),
        ("bad-level", "[log]\nlevel = \"info,,=x=\"\n",
         "D/guardian.toml:2:9: log.level: \"info,,=x=\" is not a log filter"),
        ("bad-format", "[log]\nformat = \"xml\"\n",
         "D/guardian.toml:2:10: log.format: unknown variant `xml`, expected `human` or `json`"),
        ("empty-host", "[daemon]\nhost = \"\"\n",
         "D/guardian.toml:2:8: daemon.host: \"\" is not a host name; expected 1 to 255 bytes without control characters"),
        ("relative-socket", "[control]\nsocket = \"g.sock\"\n",
         "D/guardian.toml:2:10: control.socket: \"g.sock\" is not usable; expected an absolute path of at most 107 bytes"),
        ("syntax", "[safety\nmax_targets = 1\n",
         "D/guardian.toml:1:8: unclosed table, expected `]`"),
    ];
    let mut failures = Vec::new();
    for (tag, text, want) in table {
        let got = err_of(tag, text);
        if !got.starts_with(want) {
            failures.push(format!("{tag}:\n  want {want}\n  got  {got}"));
        }
        assert!(!got.contains('\n'), "{tag}: one line: {got}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn file_errors() {
    let d = Dir::new("files");
    let missing = d.0.join("missing.toml");
    let e = load(Some(&missing), None).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("missing.toml: cannot read it: No such file or directory (os error 2)"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 78);
    // A directory where the file should be.
    std::fs::create_dir_all(d.0.join("dir.toml")).unwrap();
    let e = load(Some(&d.0.join("dir.toml")), None).unwrap_err();
    assert!(
        e.to_string().ends_with("dir.toml: not a regular file"),
        "{e}"
    );
    // Unreadable: not valid UTF-8 (root can read any mode, so permissions cannot be tested here).
    let bin = d.0.join("bin.toml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let e = load(Some(&bin), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("bin.toml: cannot read it: stream did not contain valid UTF-8"),
        "{e}"
    );
}

#[test]
fn a_bad_drop_in_is_named_not_the_main_file() {
    let d = Dir::new("dropin-bad");
    let main = d.write("guardian.toml", "[safety]\nmax_targets = 4\n");
    d.write(
        "guardian.d/10-ok.toml",
        "[safety]\nprotected_ports = [22]\n",
    );
    d.write(
        "guardian.d/20-bad.toml",
        "\n[safety]\nwindow_s = \"soon\"\n",
    );
    let e = load(Some(&main), None).unwrap_err().to_string();
    let dir = d.0.display().to_string();
    assert_eq!(
        e,
        format!("{dir}/guardian.d/20-bad.toml:3:12: safety.window_s: invalid type: string \"soon\", expected u64")
    );
    // Range errors after the merge are placed in the file that set the value last.
    std::fs::remove_file(d.0.join("guardian.d/20-bad.toml")).unwrap();
    d.write("guardian.d/30-zero.toml", "[safety]\nmax_targets = 0\n");
    let e = load(Some(&main), None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{dir}/guardian.d/30-zero.toml:2:15: safety.max_targets: expected at least 1")
    );
    // A drop-in directory that is a file.
    std::fs::remove_dir_all(d.0.join("guardian.d")).unwrap();
    d.write("guardian.d", "");
    let e = load(Some(&main), None).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{dir}/guardian.d: cannot read the drop-in directory"
        )),
        "{e}"
    );
}

#[test]
fn drop_ins_merge_in_name_order_over_the_main_file() {
    let d = Dir::new("dropin-order");
    let main = d.write(
        "guardian.toml",
        "[safety]\nmax_targets = 4\nprotected_ports = [22, 443]\n[remedies.modes]\nlink_up = \"off\"\n[daemon]\ninterval_ms = 100\n",
    );
    d.write(
        "guardian.d/20-b.toml",
        "[safety]\nmax_targets = 8\n[remedies.modes]\nsysctl = \"observe\"\n",
    );
    d.write(
        "guardian.d/10-a.toml",
        "[safety]\nmax_targets = 6\nprotected_ports = [8080]\n",
    );
    d.write("guardian.d/.hidden.toml", "this is not toml");
    d.write("guardian.d/README", "not a drop-in");
    let c = load(Some(&main), None).unwrap();
    assert_eq!(c.safety.max_targets, 8, "20-b wins over 10-a");
    assert_eq!(c.safety.protected_ports, [8080], "arrays replace");
    assert_eq!(
        c.remedies.mode_of("link_up"),
        RemedyMode::Off,
        "tables merge"
    );
    assert_eq!(c.remedies.mode_of("sysctl"), RemedyMode::Observe);
    assert_eq!(c.daemon.interval_ms, 100);
    let names: Vec<_> = c
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["guardian.toml", "10-a.toml", "20-b.toml"]);
    // Another main file in the same directory has its own drop-ins (`other.d/`).
    let other = d.write("other.toml", "");
    assert_eq!(
        load(Some(&other), None).unwrap().safety.max_targets,
        SafetyConfig::default().max_targets
    );
    assert_eq!(
        source::drop_in_dir(Path::new("/etc/guardian/guardian.toml")),
        Path::new("/etc/guardian/guardian.d")
    );
}

/// docs/deploy/guardian.toml lists every key with its default: it must parse to exactly the
/// defaults and name every key the defaults serialize to.
#[test]
fn the_example_config_is_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy/guardian.toml");
    let mut c = load(Some(&path), None).unwrap();
    c.files.clear();
    assert_eq!(c, Config::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = toml::to_string(&Config::default()).unwrap();
    for line in defaults.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap();
        assert!(
            text.contains(&format!("\n{key} = ")),
            "{key} is not in the example"
        );
    }
}

#[test]
fn ranges_of_detect_and_remedies() {
    let table = [
        ("neg-rate", "[detect.syn_flood]\nsyn_per_sec = -5.0\n",
         "D/guardian.toml:2:15: detect.syn_flood.syn_per_sec: -5 is out of range; expected a finite number greater than 0"),
        ("big-ratio", "[detect.retransmit_storm]\nratio = 7.5\n",
         "D/guardian.toml:2:9: detect.retransmit_storm.ratio: 7.5 is out of range; expected a fraction greater than 0 and at most 1"),
        ("zero-window", "[detect.link_flapping]\nwindow_ms = 0\n",
         "D/guardian.toml:2:13: detect.link_flapping.window_ms: 0 is out of range; expected 1 to 86400000 ms"),
        ("zero-update", "[detect.dns_failure]\nupdate_every_ms = 0\n",
         "D/guardian.toml:2:19: detect.dns_failure.update_every_ms: 0 is out of range; expected 1 to 86400000 ms"),
        ("capacity", "[detect.bandwidth_saturation]\ncapacity_mbps = { eth0 = 0.0 }\n",
         "D/guardian.toml:2:26: detect.bandwidth_saturation.capacity_mbps.eth0: 0 is out of range; expected a finite number greater than 0"),
        ("somaxconn", "[remedies.sysctl]\nsomaxconn = 0\n",
         "D/guardian.toml:2:13: remedies.sysctl.somaxconn: 0 is out of range; expected 1 to 2147483647"),
        ("port-range", "[remedies.sysctl]\nip_local_port_range = [60000, 1000]\n",
         "D/guardian.toml:2:23: remedies.sysctl.ip_local_port_range: [60000, 1000] is out of range; expected [low, high] with 1 <= low < high <= 65535"),
        ("dampen", "[remedies.route_dampen]\nhold_ms = 5000\nmax_hold_ms = 1000\n",
         "D/guardian.toml:3:15: remedies.route_dampen.max_hold_ms: 1000 is out of range; expected 5000 to 604800000 ms (at least hold_ms)"),
        ("share", "[remedies.xdp_port_limit]\nconcentrated_share = 0.0\n",
         "D/guardian.toml:2:22: remedies.xdp_port_limit.concentrated_share: 0 is out of range; expected a fraction greater than 0 and at most 1"),
    ];
    let mut failures = Vec::new();
    for (tag, text, want) in table {
        let got = err_of(tag, text);
        if got != want {
            failures.push(format!("{tag}:\n  want {want}\n  got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_cc_algo_is_refused() {
    use crate::remedy::config::cc_algo;
    let kernel: Vec<String> = ["reno", "cubic"].map(String::from).to_vec();
    let e = cc_algo("nosuchcc", Some(&kernel)).unwrap_err();
    assert_eq!(e.key, "remedies.route_cc.algo");
    assert_eq!(
        e.what,
        "\"nosuchcc\" is not a congestion control algorithm of this kernel; expected one of reno, cubic"
    );
    assert!(cc_algo("cubic", Some(&kernel)).is_ok());
    // The kernel's list unreadable: only the name's syntax is checked.
    assert!(cc_algo("nosuchcc", None).is_ok());
    let e = cc_algo("Bad Name", None).unwrap_err();
    assert_eq!(
        e.what,
        "\"Bad Name\" is not a congestion control name; expected 1 to 15 bytes of a-z, 0-9 or _"
    );
    // Through the file: the sentence names file, line, column and key.
    let got = err_of("cc", "[remedies.route_cc]\nalgo = \"nosuchcc\"\n");
    assert!(
        got.starts_with(
            "D/guardian.toml:2:8: remedies.route_cc.algo: \"nosuchcc\" is not a congestion control"
        ),
        "{got}"
    );
}

#[test]
fn defaults_pass_the_range_checks() {
    let c = Config::default();
    assert_eq!(c.detect.validate(), Ok(()));
    assert_eq!(c.remedies.validate(), Ok(()));
    assert_eq!(validate::validate(&c), Ok(()));
}

#[test]
fn detect_config_file_ranges_name_the_file_and_key_as_written() {
    let d = Dir::new("detect-ranges");
    let detect = d.write("detect.toml", "[syn_flood]\nsyn_per_sec = -5.0\n");
    let main = d.write("guardian.toml", "");
    let e = load(Some(&main), Some(&detect)).unwrap_err().to_string();
    assert_eq!(
        e.replace(&d.0.display().to_string(), "D"),
        "D/detect.toml:2:15: syn_flood.syn_per_sec: -5 is out of range; expected a finite number greater than 0"
    );
}

#[test]
fn dns_programs_go_on_the_xdp_interfaces_unless_dns_is_set() {
    let d = Dir::new("dns-ifaces");
    let ifaces = |text: &str| {
        let main = d.write("guardian.toml", text);
        load(Some(&main), None)
            .unwrap()
            .interfaces
            .dns_ifaces()
            .to_vec()
    };
    assert_eq!(ifaces("[interfaces]\nxdp = [\"eth0\"]\n"), ["eth0"]);
    assert!(ifaces("[interfaces]\nxdp = [\"eth0\"]\ndns = []\n").is_empty());
    assert_eq!(
        ifaces("[interfaces]\nxdp = [\"eth0\"]\ndns = [\"eth1\"]\n"),
        ["eth1"]
    );
    let e = err_of("dns-bad", "[interfaces]\ndns = [\"a/b\"]\n");
    assert!(
        e.contains("interfaces.dns: \"a/b\" is not an interface name"),
        "{e}"
    );
}
