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

/// `text` with every fault's section replaced by its `doc.md`; a fault without a section yet
/// (a new folder) gets one after the previous fault's, in the registry's order.
fn regenerated(text: &str) -> Result<String, String> {
    let mut out = text.to_string();
    let mut after: Option<usize> = None;
    for &f in FaultId::ALL {
        match section(&out, f) {
            Some((a, b)) => {
                out.replace_range(a..b, f.doc());
                after = Some(a + f.doc().len());
            }
            None => {
                let at = after.ok_or_else(|| format!("no section for `{f}`"))?;
                let block = format!("\n{}", f.doc());
                out.insert_str(at, &block);
                after = Some(at + block.len());
            }
        }
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

#[test]
fn a_fault_without_a_section_gets_one_after_the_previous_fault() {
    // The catalogue without `route_lost` (second in the registry): blessing puts it back
    // right after `link_down`'s section.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/faults.md");
    let text = std::fs::read_to_string(&path).expect("read docs/faults.md");
    let (a, b) = section(&text, FaultId::RouteLost).expect("route_lost's section");
    let mut without = text.clone();
    without.replace_range(a..b + 1, "");
    assert_eq!(section(&without, FaultId::RouteLost), None);
    let back = regenerated(&without).unwrap();
    let (la, lb) = section(&back, FaultId::LinkDown).unwrap();
    let (ra, _) = section(&back, FaultId::RouteLost).expect("route_lost inserted");
    assert!(
        la < ra && back[lb..ra].trim().is_empty(),
        "inserted right after link_down"
    );
}
