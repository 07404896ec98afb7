//! Harness for guardian's end-to-end tests: the real daemon binary, real kernel faults,
//! inside network namespaces made (and removed) by each test.
//!
//! - [`Netns`] / [`pair`]: namespaces `gt-<tag>-<pid>` joined by veth pairs in 10.77.<k>.0/24;
//!   commands run inside through `nsenter --net=/run/netns/NAME` (the guardian-testbed harness,
//!   shared with guardian-lab).
//! - [`in_netns`], [`DiscardServer`], [`bulk_send`] ([`bulk_send_paced`]), [`connect_n`]: real sockets in them.
//! - [`Daemon`]: `$GUARDIAN_BIN run --events FILE ...` inside a namespace; tails the NDJSON.
//! - [`validate_all`]: every line against docs/schema/events.schema.json (`$GUARDIAN_SCHEMA`).
//! - [`nstat`], [`ss_time_wait`], [`truth`]: the kernel's own numbers to compare with.
//! - [`nft`]: random loss at the receiver's ingress.
//! - [`nginx`]: Debian's nginx in a namespace, configured under the test's directory.
//!
//! Running: `cargo xtask test` (builds the daemon with its test-only `crash-points` feature and
//! the lab, sets `GUARDIAN_BIN`, `GUARDIAN_LAB_BIN` and `GUARDIAN_SCHEMA`), or by hand as root:
//! `cargo build --release --features guardian/crash-points`, then
//! `GUARDIAN_BIN=$PWD/target/release/guardian GUARDIAN_LAB_BIN=$PWD/target/release/guardian-lab
//! cargo test -p guardian-tests -- --nocapture`.
//! The `harness` and `schema` test files need no daemon; `gt-validate FILE...` checks any NDJSON
//! file against the schema.
//!
//! Every test must run as root ([`require_root`] fails it otherwise, it never skips), and sends
//! traffic only to addresses inside namespaces it created.
pub mod bpf_maps;
pub mod daemon;
pub mod dns;
pub mod events;
pub mod failfast;
pub mod flows;
pub mod links;
pub mod net;
pub mod netns;
pub mod nft;
pub mod nginx;
pub mod pressure;
pub mod schema;
pub mod sockets;
pub mod storm;
pub mod truth;
pub mod util;
pub mod xdp_limits;
pub mod xdp_raw;

pub use daemon::{guardian_bin, guardian_lab_bin, Daemon};
pub use events::*;
pub use net::{
    bulk_send, bulk_send_paced, churn, connect_n, connect_refused_n, in_netns, in_netns_named,
    run_in_netns, Bulk, Churn, DiscardServer,
};
pub use netns::{namespace_with_inode, pair, Netns, Veth};
pub use schema::{validate_all, validate_event, validate_lines, validate_values};
pub use truth::{nstat, nstat_get, ss_time_wait, wait_tcp_quiet};
pub use util::{
    event_time, millis_between, parse_ts, poll, read_tree, require_root, workspace_root, TempDir,
};
