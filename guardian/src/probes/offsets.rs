//! Field offsets, derived at load time: tracepoint fields from tracefs `format` files, kernel
//! structure members from BTF. Nothing here is specific to one kernel version: the
//! `tcp_retransmit_skb` layout changed in 6.17 and both layouts load.
use std::{collections::HashMap, path::Path};

use btf_rs::{Btf, Type};
use guardian_common::Offsets;

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read tracepoint format {path}: {source}")]
    Format {
        path: String,
        source: std::io::Error,
    },
    #[error("tracepoint {tracepoint} has no field `{field}`")]
    MissingField { tracepoint: String, field: String },
    #[error("kernel BTF at {path} is unreadable ({reason}); guardian needs CONFIG_DEBUG_INFO_BTF")]
    Btf { path: String, reason: String },
    #[error("kernel BTF has no member {path} (this kernel's layout is not supported)")]
    MissingMember { path: String },
    #[error("offset of {what} ({value}) does not fit in 16 bits")]
    TooLarge { what: String, value: u32 },
}

/// Field name → byte offset, parsed from a tracefs `format` file.
pub fn parse_format(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut decl = None;
        let mut offset = None;
        for (i, part) in rest.split(';').enumerate() {
            let part = part.trim();
            if i == 0 {
                decl = Some(part);
            } else if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse::<u32>().ok();
            }
        }
        let (Some(decl), Some(offset)) = (decl, offset) else {
            continue;
        };
        // "const void * skbaddr", "__u8 saddr[4]", "int err".
        let name = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("");
        if !name.is_empty() {
            out.insert(name.to_string(), offset);
        }
    }
    out
}

/// The fields of one tracepoint, read from `<tracefs>/events/<category>/<name>/format`.
pub struct TracepointFields {
    name: String,
    fields: HashMap<String, u32>,
}

impl TracepointFields {
    pub fn read(tracefs: &Path, category: &str, name: &str) -> Result<Self, OffsetError> {
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| OffsetError::Format {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_text(&format!("{category}:{name}"), &text))
    }

    pub fn from_text(name: &str, text: &str) -> Self {
        Self {
            name: name.to_string(),
            fields: parse_format(text),
        }
    }

    pub fn required(&self, field: &str) -> Result<u16, OffsetError> {
        let v = self
            .fields
            .get(field)
            .copied()
            .ok_or_else(|| OffsetError::MissingField {
                tracepoint: self.name.clone(),
                field: field.to_string(),
            })?;
        narrow(&format!("{}.{field}", self.name), v)
    }

    /// A field that only some kernels have: [`Offsets::ABSENT`] when missing.
    pub fn optional(&self, field: &str) -> Result<u16, OffsetError> {
        match self.fields.get(field) {
            Some(&v) => narrow(&format!("{}.{field}", self.name), v),
            None => Ok(Offsets::ABSENT),
        }
    }
}

fn narrow(what: &str, value: u32) -> Result<u16, OffsetError> {
    u16::try_from(value)
        .ok()
        .filter(|v| *v != Offsets::ABSENT)
        .ok_or_else(|| OffsetError::TooLarge {
            what: what.to_string(),
            value,
        })
}

/// Kernel structure layouts from BTF.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Reads the file whole, then parses it: btf-rs's `from_file` parses through a `BufReader`
    /// whose every seek is an `lseek` that drops the buffer, 0.4 s of a 1 s start here.
    pub fn open(path: &Path) -> Result<Self, OffsetError> {
        let err = |reason: String| OffsetError::Btf {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let btf = Btf::from_bytes(&bytes).map_err(|e| err(e.to_string()))?;
        Ok(Self { btf })
    }

    /// Byte offset of `path` (e.g. `["skc_net", "net"]`) inside `struct name`, descending
    /// through typedefs and anonymous structs/unions.
    pub fn member_offset(&self, name: &str, path: &[&str]) -> Result<u32, OffsetError> {
        let missing = || OffsetError::MissingMember {
            path: format!("struct {name}.{}", path.join(".")),
        };
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| missing())?;
        let mut current = types
            .into_iter()
            .find(|t| matches!(t, Type::Struct(_)))
            .ok_or_else(missing)?;
        let mut total = 0u32;
        for field in path {
            let (off, ty) = self.find_member(&current, field).ok_or_else(missing)?;
            total += off;
            current = ty;
        }
        Ok(total)
    }

    /// Finds `field` in a struct/union, looking into anonymous members. Returns the member's
    /// byte offset and its type with typedefs/qualifiers stripped.
    fn find_member(&self, ty: &Type, field: &str) -> Option<(u32, Type)> {
        let members = match ty {
            Type::Struct(s) | Type::Union(s) => &s.members,
            _ => return None,
        };
        for m in members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            let mty = self.strip(self.btf.resolve_chained_type(m).ok()?);
            let off = m.bit_offset() / 8;
            if name == field {
                return Some((off, mty));
            }
            if name.is_empty() {
                if let Some((inner, t)) = self.find_member(&mty, field) {
                    return Some((off + inner, t));
                }
            }
        }
        None
    }

    fn strip(&self, mut ty: Type) -> Type {
        for _ in 0..16 {
            let next = match &ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(t),
                Type::Const(t) => self.btf.resolve_chained_type(t),
                Type::Volatile(t) => self.btf.resolve_chained_type(t),
                Type::Restrict(t) => self.btf.resolve_chained_type(t),
                Type::TypeTag(t) => self.btf.resolve_chained_type(t),
                _ => return ty,
            };
            match next {
                Ok(n) => ty = n,
                Err(_) => return ty,
            }
        }
        ty
    }

    fn offset16(&self, name: &str, path: &[&str]) -> Result<u16, OffsetError> {
        let v = self.member_offset(name, path)?;
        narrow(&format!("{name}.{}", path.join(".")), v)
    }
}

/// Everything the programs need, from this kernel's tracefs and BTF.
pub fn derive(tracefs: &Path, btf: &KernelBtf) -> Result<Offsets, OffsetError> {
    let rtx = TracepointFields::read(tracefs, "tcp", "tcp_retransmit_skb")?;
    let synack = TracepointFields::read(tracefs, "tcp", "tcp_retransmit_synack")?;
    let st = TracepointFields::read(tracefs, "sock", "inet_sock_set_state")?;
    let bind = TracepointFields::read(tracefs, "syscalls", "sys_enter_bind")?;
    let bind_exit = TracepointFields::read(tracefs, "syscalls", "sys_exit_bind")?;
    let exit_ret = bind_exit.required("ret")?;
    let cb = btf.member_offset("sk_buff", &["cb"])?;
    let gso = btf.member_offset("tcp_skb_cb", &["tcp_gso_segs"])?;
    let flags = btf.member_offset("tcp_skb_cb", &["tcp_flags"])?;
    // Flow signals. `tcp_sock` and `inet_connection_sock` embed their base structs first, so
    // these are offsets from the `struct sock *` the tracepoints carry.
    let mss_cache = btf.offset16("tcp_sock", &["mss_cache"])?;
    let icsk_retransmits = btf.offset16("inet_connection_sock", &["icsk_retransmits"])?;
    let icsk_backoff = btf.offset16("inet_connection_sock", &["icsk_backoff"])?;
    // Optional: without it refusals are counted as failures, as before.
    let sk_err = btf.offset16("sock", &["sk_err"]).unwrap_or(Offsets::ABSENT);
    // Optional: without it the uid of a failed connect is unknown (`sockopt_failfast` then
    // skips, for want of evidence from more than one uid). `kuid_t` starts with its `val`.
    let sk_uid = btf.offset16("sock", &["sk_uid"]).unwrap_or(Offsets::ABSENT);
    // Optional: without it a connect whose bound port's 4-tuple is taken is not told from a
    // connect that failed on the network.
    let tcp_segs_out = btf
        .offset16("tcp_sock", &["segs_out"])
        .unwrap_or(Offsets::ABSENT);
    Ok(Offsets {
        rtx_skbaddr: rtx.required("skbaddr")?,
        rtx_skaddr: rtx.required("skaddr")?,
        rtx_state: rtx.required("state")?,
        rtx_err: rtx.optional("err")?,
        synack_skaddr: synack.required("skaddr")?,
        st_skaddr: st.required("skaddr")?,
        st_oldstate: st.required("oldstate")?,
        st_newstate: st.required("newstate")?,
        st_dport: st.required("dport")?,
        st_family: st.required("family")?,
        st_protocol: st.required("protocol")?,
        st_daddr: st.required("daddr")?,
        st_daddr_v6: st.required("daddr_v6")?,
        bind_umyaddr: bind.required("umyaddr")?,
        bind_addrlen: bind.required("addrlen")?,
        exit_ret,
        sock_net: btf.offset16("sock_common", &["skc_net", "net"])?,
        net_inum: btf.offset16("net", &["ns", "inum"])?,
        task_nsproxy: btf.offset16("task_struct", &["nsproxy"])?,
        nsproxy_net_ns: btf.offset16("nsproxy", &["net_ns"])?,
        skb_gso_segs: narrow("sk_buff.cb+tcp_gso_segs", cb + gso)?,
        skb_tcp_flags: narrow("sk_buff.cb+tcp_flags", cb + flags)?,
        st_sport: st.required("sport")?,
        // The flow key of a retransmit (mtu_blackhole's per-flow pattern). 5.10's
        // tcp_retransmit_skb has no `family`: then the per-flow pattern is off and everything
        // else still counts (the program skips a flow whose key has an ABSENT field).
        rtx_sport: rtx.optional("sport")?,
        rtx_dport: rtx.optional("dport")?,
        rtx_family: rtx.optional("family")?,
        rtx_daddr: rtx.optional("daddr")?,
        rtx_daddr_v6: rtx.optional("daddr_v6")?,
        skb_len: btf.offset16("sk_buff", &["len"])?,
        tcp_mss_cache: mss_cache,
        icsk_retransmits,
        icsk_backoff,
        sk_err,
        sk_uid,
        tcp_segs_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // tcp:tcp_retransmit_skb as Linux 6.18 prints it (with `err`, since 6.17).
    const RTX_618: &str = "name: tcp_retransmit_skb\nID: 1501\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:__u8 daddr_v6[16];\toffset:58;\tsize:16;\tsigned:0;\n\
\tfield:int err;\toffset:76;\tsize:4;\tsigned:1;\n\nprint fmt: \"...\"\n";

    // The same tracepoint before 6.17 (DECLARE_EVENT_CLASS tcp_event_sk_skb, no `err`).
    const RTX_66: &str = "format:\n\
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n";

    #[test]
    fn parses_pointer_array_and_int_fields() {
        let f = parse_format(RTX_618);
        assert_eq!(f["skbaddr"], 8);
        assert_eq!(f["skaddr"], 16);
        assert_eq!(f["state"], 24);
        assert_eq!(f["daddr_v6"], 58);
        assert_eq!(f["err"], 76);
        assert_eq!(f["common_pid"], 4);
        assert!(!f.contains_key("print"));
    }

    #[test]
    fn err_field_is_optional_across_layouts() {
        let new = TracepointFields::from_text("tcp:tcp_retransmit_skb", RTX_618);
        let old = TracepointFields::from_text("tcp:tcp_retransmit_skb", RTX_66);
        assert_eq!(new.optional("err").unwrap(), 76);
        assert_eq!(old.optional("err").unwrap(), Offsets::ABSENT);
        assert_eq!(old.required("skaddr").unwrap(), 16);
    }

    #[test]
    fn missing_required_field_names_tracepoint_and_field() {
        let old = TracepointFields::from_text("tcp:tcp_retransmit_skb", RTX_66);
        let e = old.required("err").unwrap_err().to_string();
        assert!(
            e.contains("tcp:tcp_retransmit_skb") && e.contains("`err`"),
            "{e}"
        );
    }

    #[test]
    fn syscall_fields() {
        let text = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:struct sockaddr * umyaddr;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;\n";
        let f = parse_format(text);
        assert_eq!(f["umyaddr"], 24);
        assert_eq!(f["__syscall_nr"], 8);
        assert_eq!(f["addrlen"], 32);
    }

    /// Reads this machine's BTF when it has one (it is world-readable; no privileges needed).
    /// The offsets are checked for internal consistency, not against one kernel's numbers.
    #[test]
    fn btf_member_offsets_resolve_through_anonymous_members() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("no kernel BTF here; BTF resolution is covered by the end-to-end tests");
            return;
        }
        let btf = KernelBtf::open(path).unwrap();
        // possible_net_t is a typedef'd anonymous struct whose first member is `net`.
        let a = btf.member_offset("sock_common", &["skc_net"]).unwrap();
        let b = btf
            .member_offset("sock_common", &["skc_net", "net"])
            .unwrap();
        assert_eq!(a, b);
        // tcp_gso_segs lives in an anonymous struct inside an anonymous union, 8 bytes in.
        assert_eq!(
            btf.member_offset("tcp_skb_cb", &["tcp_gso_segs"]).unwrap(),
            8
        );
        assert!(btf.member_offset("sk_buff", &["cb"]).unwrap() > 0);
        assert!(btf.member_offset("sk_buff", &["no_such_member"]).is_err());
        assert!(btf.member_offset("no_such_struct", &["x"]).is_err());
    }
}
