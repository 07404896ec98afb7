//! The connection-level shadow programs (guardian-ebpf/src/shadows.rs): the offsets of the
//! reset tracepoints, from tracefs and BTF, and their attachment. Optional: a kernel without
//! these tracepoints runs without `reset_storm` (the `attached` event says why).
use std::path::Path;

use aya::{programs::trace_point::TracePointLinkId, Ebpf};
use guardian_common::shadows::ShadowOffsets;

use super::error::ProbeError;
use super::offsets::{KernelBtf, OffsetError, TracepointFields};

/// The kernel map the reset sampler reads.
pub const MAP: &str = "RST_PORT";

/// (program, tracepoint category, tracepoint name).
pub const TRACEPOINTS: [(&str, &str, &str); 3] = [
    ("tcp_send_rst", "tcp", "tcp_send_reset"),
    ("tcp_recv_rst", "tcp", "tcp_receive_reset"),
    ("tcp_close_wait", "sock", "inet_sock_set_state"),
];

/// The CLOSE_WAIT maps: counts per (netns, port), and the sockets in CLOSE_WAIT.
pub const CW_MAP: &str = "CW_PORT";
pub const CW_SOCKS: &str = "CW_SOCKS";

fn narrow(what: &str, v: u32) -> Result<u16, OffsetError> {
    u16::try_from(v)
        .ok()
        .filter(|v| *v != ShadowOffsets::ABSENT)
        .ok_or_else(|| OffsetError::TooLarge {
            what: what.to_string(),
            value: v,
        })
}

/// Every offset the reset programs read. `tcp_send_reset` changed layout in 6.10 (ports inside
/// `struct sockaddr` fields instead of `sport`/`dport`): both load.
pub fn derive(tracefs: &Path, btf: &KernelBtf) -> Result<ShadowOffsets, OffsetError> {
    let send = TracepointFields::read(tracefs, "tcp", "tcp_send_reset")?;
    let recv = TracepointFields::read(tracefs, "tcp", "tcp_receive_reset")?;
    from_fields(&send, &recv, btf)
}

/// [`derive`] from parsed tracepoint formats (unit-tested with both layouts).
pub fn from_fields(
    send: &TracepointFields,
    recv: &TracepointFields,
    btf: &KernelBtf,
) -> Result<ShadowOffsets, OffsetError> {
    let (srst_saddr, srst_daddr, srst_sport, srst_dport) = match send.optional("sport")? {
        ShadowOffsets::ABSENT => (
            send.required("saddr")?,
            send.required("daddr")?,
            ShadowOffsets::ABSENT,
            ShadowOffsets::ABSENT,
        ),
        sport => (
            ShadowOffsets::ABSENT,
            ShadowOffsets::ABSENT,
            sport,
            send.required("dport")?,
        ),
    };
    let off =
        |s: &str, p: &[&str]| narrow(&format!("{s}.{}", p.join(".")), btf.member_offset(s, p)?);
    Ok(ShadowOffsets {
        srst_skaddr: send.required("skaddr")?,
        // Before 6.10 the tracepoint always has a socket; the skb is then never read.
        srst_skbaddr: send.optional("skbaddr")?,
        srst_saddr,
        srst_daddr,
        srst_sport,
        srst_dport,
        rrst_skaddr: recv.required("skaddr")?,
        rrst_sport: recv.required("sport")?,
        rrst_dport: recv.required("dport")?,
        skb_dev: off("sk_buff", &["dev"])?,
        dev_nd_net: off("net_device", &["nd_net", "net"])?,
        // Optional: without them close_wait_leak counts but names no process.
        sk_socket: off("sock", &["sk_socket"]).unwrap_or(ShadowOffsets::ABSENT),
        socket_inode: match (
            btf.member_offset("socket_alloc", &["vfs_inode"]),
            btf.member_offset("socket_alloc", &["socket"]),
        ) {
            (Ok(i), Ok(s)) if i >= s => narrow("socket_alloc.vfs_inode", i - s)?,
            _ => ShadowOffsets::ABSENT,
        },
        i_ino: off("inode", &["i_ino"]).unwrap_or(ShadowOffsets::ABSENT),
        _pad: [0; 2],
    })
}

/// Loads and attaches both programs; the links go into `links` (detached with the others).
pub fn attach(
    ebpf: &mut Ebpf,
    links: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<(), ProbeError> {
    for (prog, category, name) in TRACEPOINTS {
        links.push((prog, super::tracepoint::attach(ebpf, prog, category, name)?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_618: &str = "\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;\n\
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;\n\
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;\n";
    // tcp_event_sk_skb before 6.10.
    const SEND_66: &str = "\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;\n\
\tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\n";
    const RECV: &str = "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:__u16 sport;\toffset:16;\tsize:2;\tsigned:0;\n\
\tfield:__u16 dport;\toffset:18;\tsize:2;\tsigned:0;\n";

    #[test]
    fn both_send_reset_layouts_load() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("no kernel BTF here; covered by the end-to-end test");
            return;
        }
        let btf = KernelBtf::open(path).unwrap();
        let recv = TracepointFields::from_text("tcp:tcp_receive_reset", RECV);
        let new = from_fields(
            &TracepointFields::from_text("tcp:tcp_send_reset", SEND_618),
            &recv,
            &btf,
        )
        .unwrap();
        assert_eq!((new.srst_saddr, new.srst_daddr), (32, 60));
        assert_eq!(new.srst_sport, ShadowOffsets::ABSENT);
        assert_eq!((new.rrst_sport, new.rrst_dport), (16, 18));
        let old = from_fields(
            &TracepointFields::from_text("tcp:tcp_send_reset", SEND_66),
            &recv,
            &btf,
        )
        .unwrap();
        assert_eq!((old.srst_sport, old.srst_dport), (28, 30));
        assert_eq!(old.srst_saddr, ShadowOffsets::ABSENT);
        assert!(new.skb_dev > 0 && new.skb_dev != ShadowOffsets::ABSENT);
        let none = TracepointFields::from_text("tcp:tcp_send_reset", "");
        let e = from_fields(&none, &recv, &btf).unwrap_err().to_string();
        assert!(e.contains("tcp:tcp_send_reset"), "{e}");
    }
}
