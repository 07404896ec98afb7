//! `docs/faults.md` is checked against the fault folders: the section of each fault (from its
//! ``### `<fault>` `` heading up to the next heading) is its `faults/<fault>/doc.md`, verbatim.
//! After editing a `doc.md`, regenerate the catalogue with
//! `GUARDIAN_BLESS=1 cargo test -p guardian --lib faults::docs`.
use std::path::PathBuf;

use super::FaultId;

/// The byte range of `fault`'s section in `text`, trailing blank lines excluded.
fn section(text: &str, fault: FaultId) -> Option<(usize, usize)> {
    let head = format!("### `{}`", fault.as_str());
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        match start {
            None if line.starts_with(&head) => start = Some(offset),
            Some(_) if line.starts_with("## ") || line.starts_with("### ") => break,
            _ => {}
        }
        offset += line.len();
    }
    let start = start?;
    let end = start + text[start..offset].trim_end_matches('\n').len() + 1;
    Some((start, end.min(text.len())))
}

/// `text` with every fault's section replaced by its `doc.md`.
fn regenerated(text: &str) -> Result<String, String> {
    let mut out = text.to_string();
    for &f in FaultId::ALL {
        let (a, b) = section(&out, f).ok_or_else(|| format!("no section for `{f}`"))?;
        out.replace_range(a..b, f.doc());
    }
    Ok(out)
}

#[test]
fn docs_faults_md_is_made_of_the_fault_docs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/faults.md");
    let text = std::fs::read_to_string(&path).expect("read docs/faults.md");
    let want = regenerated(&text).unwrap_or_else(|e| panic!("docs/faults.md: {e}"));
    if std::env::var_os("GUARDIAN_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write docs/faults.md");
        return;
    }
    for &f in FaultId::ALL {
        assert!(
            f.doc().starts_with(&format!("### `{f}`")),
            "{f}/doc.md: heading"
        );
        assert!(
            f.doc().ends_with('\n') && !f.doc().ends_with("\n\n"),
            "{f}/doc.md: ending"
        );
    }
    assert!(
        text == want,
        "docs/faults.md differs from the faults' doc.md sections; regenerate it with \
         `GUARDIAN_BLESS=1 cargo test -p guardian --lib faults::docs`"
    );
}

#[test]
fn a_section_ends_at_the_next_heading() {
    let text = "# T\n\n### `syn_flood` (x)\n\nbody\n\n### Other\nmore\n";
    let (a, b) = section(text, FaultId::SynFlood).unwrap();
    assert_eq!(&text[a..b], "### `syn_flood` (x)\n\nbody\n");
    assert_eq!(section(text, FaultId::LinkDown), None);
}
