//! Where on a function an entry-only uprobe goes.
//!
//! A uprobe is a breakpoint; after it, the kernel has to run the instruction it replaced. x86
//! emulates a few (near `jmp`, `call` and conditional jumps: `branch_setup_xol_ops` in
//! arch/x86/kernel/uprobes.c, since Linux 3.x) and single-steps a copy of any other one out of
//! line, which is a second trap. Measured here (a VM, `perf stat -e` on a `perf probe` of the
//! same 8-instruction function, 10^5 calls): 21–52 µs per hit on its first instruction
//! (`sub $0x18,%rsp`) against 0.6–1.6 µs on its `call`. Functions rarely start with an
//! instruction x86 emulates (Debian's `SSL_write` starts with that same `sub`), so a probe
//! that reads only the arguments goes on the first emulated instruction instead, when:
//! - it is on the straight path from the entry (no branch before it), so it runs exactly once
//!   per call, like the entry;
//! - no instruction before it writes an argument register the program reads.
//!
//! Otherwise, and for return probes (which must sit on the entry), the probe stays on the
//! entry. Written here rather than found in a crate: no crate picks uprobe sites; the decoding
//! itself is iced-x86's.
use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, OpAccess, Register};
use object::{Object, ObjectSection, ObjectSymbol};

/// How far into a function to look.
const MAX_INSNS: usize = 16;
const MAX_BYTES: usize = 96;

/// The System V x86-64 integer argument registers, in order.
const ARGS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// Whether the kernel emulates this instruction (no prefix at all: the kernel refuses a 0x66
/// prefix on branches, and no other is needed here): `jmp rel8` (eb), `jmp rel32` (e9),
/// `call rel32` (e8), `jcc rel8` (70–7f), `jcc rel32` (0f 80–8f).
pub fn emulated(bytes: &[u8]) -> bool {
    match bytes {
        [0xeb | 0xe9 | 0xe8, ..] => true,
        [b, ..] if (0x70..=0x7f).contains(b) => true,
        [0x0f, b, ..] => (0x80..=0x8f).contains(b),
        _ => false,
    }
}

/// The offset in `code` (a function's first bytes, x86-64) of the first instruction the kernel
/// emulates, reached from the entry without a branch and with the first `keep` argument
/// registers untouched; `None` when there is none within the first 16 instructions.
pub fn early_site(code: &[u8], keep: usize) -> Option<u64> {
    let keep = &ARGS[..keep.min(ARGS.len())];
    let mut dec = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    for _ in 0..MAX_INSNS {
        if !dec.can_decode() {
            return None;
        }
        let ins = dec.decode();
        if ins.is_invalid() {
            return None;
        }
        let at = ins.ip() as usize;
        if emulated(code.get(at..at + ins.len())?) {
            return Some(ins.ip());
        }
        if ins.flow_control() != FlowControl::Next {
            return None;
        }
        let writes = info.info(&ins).used_registers().iter().any(|r| {
            matches!(
                r.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) && keep.contains(&r.register().full_register())
        });
        if writes {
            return None;
        }
    }
    None
}

/// The first bytes (at most 96, within the symbol's size) of function `sym` of the ELF file
/// `elf`, from its dynamic symbols or its symbol table.
pub fn function_bytes(elf: &[u8], sym: &str) -> Option<Vec<u8>> {
    let file = object::File::parse(elf).ok()?;
    let s = file
        .dynamic_symbols()
        .chain(file.symbols())
        .find(|s| s.is_definition() && s.name() == Ok(sym))?;
    let addr = s.address();
    let section = file
        .sections()
        .find(|sec| sec.address() <= addr && addr < sec.address().saturating_add(sec.size()))?;
    let data = section.data().ok()?;
    let start = usize::try_from(addr - section.address()).ok()?;
    let len = (s.size() as usize).clamp(1, MAX_BYTES);
    let end = start.saturating_add(len).min(data.len());
    data.get(start..end).map(<[u8]>::to_vec)
}

/// Where to put an entry-only probe of `sym` in `lib` that reads its first `keep` arguments:
/// the offset from the symbol (0: the entry). Any failure to read or decode keeps the entry.
pub fn site(lib: &Path, elf: Option<&[u8]>, sym: &str, keep: usize) -> u64 {
    if !cfg!(target_arch = "x86_64") {
        return 0;
    }
    let Some(code) = elf.and_then(|e| function_bytes(e, sym)) else {
        tracing::debug!(lib = %lib.display(), sym, "uprobe on the entry: code not read");
        return 0;
    };
    early_site(&code, keep).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's libssl.so.3 (3.0.x) `SSL_write`, as `objdump -d` shows it.
    const SSL_WRITE: &[u8] = &[
        0x48, 0x83, 0xec, 0x18, // sub $0x18,%rsp
        0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00, // mov %fs:0x28,%rax
        0x48, 0x89, 0x44, 0x24, 0x08, // mov %rax,0x8(%rsp)
        0x31, 0xc0, // xor %eax,%eax
        0x85, 0xd2, // test %edx,%edx
        0x78, 0x2f, // js +0x2f
        0x48, 0x89, 0xe1, // mov %rsp,%rcx
        0x48, 0x63, 0xd2, // movslq %edx,%rdx
        0xe8, 0xfd, 0xfb, 0xff, 0xff, // call
    ];

    #[test]
    fn ssl_write_is_probed_on_its_first_branch() {
        // `js` at +0x16: the buffer (rsi) and the SSL (rdi) are untouched before it.
        assert_eq!(early_site(SSL_WRITE, 2), Some(0x16));
        assert_eq!(early_site(SSL_WRITE, 1), Some(0x16));
    }

    #[test]
    fn a_written_argument_keeps_the_entry() {
        // mov %rdx,%rsi; call: the second argument is overwritten before the call.
        let code = [0x48, 0x89, 0xd6, 0xe8, 0, 0, 0, 0];
        assert_eq!(early_site(&code, 2), None);
        // A probe that reads only the first one may move.
        assert_eq!(early_site(&code, 1), Some(3));
        // A sub-register write counts: mov %esi,%edi (writes rdi).
        let code = [0x89, 0xf7, 0xe8, 0, 0, 0, 0];
        assert_eq!(early_site(&code, 1), None);
    }

    #[test]
    fn the_entry_itself_may_be_the_site() {
        // jmp rel32 (a tail call) or a call first.
        assert_eq!(early_site(&[0xe9, 1, 2, 3, 4], 2), Some(0));
        assert_eq!(early_site(&[0xe8, 1, 2, 3, 4], 2), Some(0));
    }

    #[test]
    fn nothing_past_a_branch_the_kernel_does_not_emulate() {
        // ret first, an indirect jmp first, undecodable bytes, no branch at all.
        assert_eq!(early_site(&[0xc3, 0xe8, 0, 0, 0, 0], 0), None);
        assert_eq!(early_site(&[0xff, 0xe0, 0xe8, 0, 0, 0, 0], 0), None);
        assert_eq!(early_site(&[0x0f, 0xff], 0), None);
        assert_eq!(early_site(&[0x90; 40], 0), None);
        assert_eq!(early_site(&[], 0), None);
    }

    #[test]
    fn prefixed_branches_are_not_picked() {
        assert!(emulated(&[0x0f, 0x84, 0, 0, 0, 0]));
        assert!(emulated(&[0x74, 0x05]));
        assert!(!emulated(&[0x66, 0xe8, 0, 0]));
        assert!(!emulated(&[0xf2, 0xe9, 0, 0, 0, 0]));
        assert!(!emulated(&[0x0f, 0x1f, 0x44, 0, 0]));
        assert!(!emulated(&[0xff, 0x15, 0, 0, 0, 0]));
    }

    /// The system's libssl (`cargo xtask setup` installs it with nginx and curl).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_system_libssl_write_functions_get_an_early_site() {
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        let elf = std::fs::read(lib).expect("libssl.so.3, installed by cargo xtask setup");
        for sym in ["SSL_write", "SSL_write_ex"] {
            let code = function_bytes(&elf, sym).expect(sym);
            assert!(code.len() >= 16, "{sym}: {} bytes", code.len());
            let off = site(lib, Some(&elf), sym, 2);
            assert!(off > 0 && off < 96, "{sym}: {off}");
        }
        assert!(function_bytes(&elf, "no_such_function").is_none());
    }
}
