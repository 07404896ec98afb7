//! Files that steer a root daemon must not be writable by others: warn when the config files,
//! their directories or the state directory are group- or world-writable.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why `path` is unsafe, if it is (it exists and is group/world-writable).
pub fn insecure(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.mode();
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => "world",
        (true, false) => "group",
        _ => return None,
    };
    Some(format!(
        "{} is {who}-writable (mode {:o}): anyone who can write it controls what guardian changes; run `chmod go-w {}`",
        path.display(),
        mode & 0o7777,
        path.display()
    ))
}

/// The paths worth checking for a config: each file, its directory, and the state directory.
pub fn paths(files: &[PathBuf], state_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for f in files {
        for p in [Some(f.as_path()), f.parent()].into_iter().flatten() {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_path_buf());
            }
        }
    }
    out.push(state_dir.to_path_buf());
    out
}

/// Logs a warning for each unsafe path; returns the warnings.
pub fn warn(files: &[PathBuf], state_dir: &Path) -> Vec<String> {
    let found: Vec<String> = paths(files, state_dir)
        .iter()
        .filter_map(|p| insecure(p))
        .collect();
    for w in &found {
        tracing::warn!("{w}");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_and_world_writable_are_reported() {
        let dir = std::env::temp_dir().join(format!("guardian-perms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("g.toml");
        std::fs::write(&f, "").unwrap();
        let set = |m| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
        set(0o644);
        assert_eq!(insecure(&f), None);
        set(0o664);
        assert!(insecure(&f).unwrap().contains("group-writable (mode 664)"));
        set(0o646);
        assert!(insecure(&f).unwrap().contains("world-writable"));
        assert_eq!(insecure(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
