//! guardian's end-to-end tests, linked as one test binary (`e2e`), the way aya's
//! `integration-test` crate does it: one link of the guardian-tests library and its
//! dependencies instead of one per file.
//!
//! Layout: each `tests/tests/e2e/X.rs` is the module `X` of this binary and holds the tests of
//! one area (its `//!` line says which); a test's name is `X::test_fn`. Helpers shared by
//! several modules are modules of their own, compiled once (`routes_common`, `sysctl_common`:
//! `use super::routes_common::*;`); helpers shared with the lab and benches live in the
//! guardian-tests library (tests/src). A new test file is a new `X.rs` plus its `mod X;` line
//! below.
//!
//! The tests run the real release binary (`GUARDIAN_BIN`) in network namespaces, one test at a
//! time (`--test-threads=1`: they share the host's bpffs, cgroups and CPU). `cargo xtask test`
//! runs them all; a libtest name filter after `--` picks a module or a test (a filter matches
//! every test whose full name contains it):
//!
//! ```text
//! cargo xtask test -- replay::                 # every test of replay.rs
//! cargo xtask test --e2e -- control::sighup    # skip the unit tests; one test of control.rs
//! GUARDIAN_BIN=target/release/guardian GUARDIAN_SCHEMA=docs/schema/events.schema.json \
//!   cargo test --release -p guardian-tests --test e2e -- --test-threads=1 schema::
//! cargo test --release -p guardian-tests --test e2e -- --list   # every test's name
//! ```
//!
//! All modules share this one process, so no test may rely on a process of its own: nothing
//! sets env vars, changes the cwd or installs signal handlers; names that must be unique
//! (namespaces, temp dirs) carry the pid and a per-process counter (guardian_tests::netns,
//! guardian_tests::util).

// Shared helpers.
mod routes_common;
mod sysctl_common;

// Test modules, one per former test file.
mod adversarial;
mod attacks_journal;
mod attacks_peers;
mod attacks_user;
mod bad_input;
mod benign;
mod bind_conflict;
mod clean_detach;
mod completions;
mod config_cmd;
mod config_files;
mod connection_refused;
mod control;
mod control_planes;
mod control_planes_dhcp;
mod control_planes_vrrp;
mod crash_safety;
mod deploy;
mod doctor;
mod engine_safety;
mod faults_flows;
mod faults_links_dns;
mod faults_sockets;
mod fleet;
mod harness;
mod heal_failfast;
mod heal_listen;
mod heal_ports;
mod heal_routes;
mod heal_routes_flows;
mod heal_sysctl;
mod heal_sysctl_backoff;
mod heal_xdp;
mod http;
mod http2;
mod http_fd_reuse;
mod http_held;
mod http_latency;
mod http_packets;
mod kernel_features;
mod lab;
mod link_heal;
mod log_format;
mod map_sizing;
mod metrics;
mod metrics_endpoint;
mod netns_gone;
mod netns_lock;
mod netns_reuse;
mod notify;
mod operator_errors;
mod overload;
mod owners;
mod package;
mod privileges;
mod prometheus_rules;
mod replay;
mod retransmits;
mod route_tables;
mod scan;
mod schema;
mod security;
mod shadows;
mod shadows_dns;
mod sinks;
mod systemd;
mod time_wait;
mod tls;
mod tls_alerts;
mod tls_record;
mod tls_threads;
mod xdp_lifecycle;
mod xdp_syn;
mod xdp_syn_v6;
mod zero_window;
