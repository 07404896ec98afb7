//! Journal authentication: a per-host key (`<state_dir>/journal.key`, 32 random bytes, mode
//! 0600, created at first start with O_CREAT|O_EXCL|O_NOFOLLOW) and an HMAC-SHA256 over every
//! line. A line is `{...record...,"mac":"<64 hex>"}`: the MAC covers the exact bytes of the
//! record as written (the line without its `,"mac":"..."` suffix), so checking it needs no
//! re-serialization. Lines without a valid MAC (forged, torn, copied from another host, or
//! written by a version before authentication) are never acted on (docs/security.md).
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file's name in the state directory.
pub const KEY_NAME: &str = "journal.key";
const KEY_LEN: usize = 32;
const MAC_PREFIX: &str = ",\"mac\":\"";
/// `,"mac":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = MAC_PREFIX.len() + 64 + 2;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot create the journal key {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot read the journal key {}: {source} (it must be a regular file, not a symlink)", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("the journal key {} is unsafe: {why}; remove it (guardian creates a new one, and no longer trusts the journal's old records) or fix it", path.display())]
    Unsafe { path: PathBuf, why: String },
}

/// The per-host journal key.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Reads the key of `dir`, creating it when it does not exist yet.
    pub fn load_or_create(dir: &Path) -> Result<Key, KeyError> {
        match Key::load(dir)? {
            Some(k) => Ok(k),
            None => Key::create(dir),
        }
    }

    /// Reads the key of `dir`; `None` when there is none. Refused: a symlink, a file that is
    /// not ours, readable or writable by others, or of the wrong size.
    pub fn load(dir: &Path) -> Result<Option<Key>, KeyError> {
        let path = dir.join(KEY_NAME);
        let read_err = |source| KeyError::Read {
            path: path.clone(),
            source,
        };
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let meta = f.metadata().map_err(read_err)?;
        let unsafe_ = |why: String| KeyError::Unsafe {
            path: path.clone(),
            why,
        };
        if !meta.is_file() {
            return Err(unsafe_("it is not a regular file".into()));
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(unsafe_(format!("it belongs to uid {}", meta.uid())));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(unsafe_(format!(
                "others can read or write it (mode {:o})",
                meta.mode() & 0o7777
            )));
        }
        let mut buf = Vec::with_capacity(KEY_LEN + 1);
        Read::by_ref(&mut f)
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        let key: [u8; KEY_LEN] = buf
            .try_into()
            .map_err(|b: Vec<u8>| unsafe_(format!("it holds {} bytes, not {KEY_LEN}", b.len())))?;
        Ok(Some(Key(key)))
    }

    /// Creates a new random key (O_EXCL: never over an existing file or symlink).
    fn create(dir: &Path) -> Result<Key, KeyError> {
        let path = dir.join(KEY_NAME);
        let err = |source| KeyError::Create {
            path: path.clone(),
            source,
        };
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| err(io::Error::other(e.to_string())))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(err)?;
        f.write_all(&key).and_then(|()| f.sync_all()).map_err(err)?;
        tracing::info!(path = %path.display(), "created the journal key");
        Ok(Key(key))
    }

    #[cfg(test)]
    pub fn fixed(b: u8) -> Key {
        Key([b; KEY_LEN])
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(body);
        m
    }

    /// `body` (one JSON object, no newline) with its MAC as a last `mac` field.
    pub fn sign(&self, body: &[u8]) -> Vec<u8> {
        let tag = self.mac(body).finalize().into_bytes();
        let mut out = Vec::with_capacity(body.len() + SUFFIX_LEN);
        out.extend_from_slice(&body[..body.len().saturating_sub(1)]);
        out.extend_from_slice(MAC_PREFIX.as_bytes());
        for b in tag {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        out.extend_from_slice(b"\"}");
        out
    }

    /// The signed record of a line, when its MAC is valid (compared in constant time).
    pub fn verify(&self, line: &str) -> Result<String, &'static str> {
        let Some(split) = line.len().checked_sub(SUFFIX_LEN) else {
            return Err("no MAC");
        };
        let (head, tail) = line.split_at_checked(split).ok_or("no MAC")?;
        let hex = tail
            .strip_prefix(MAC_PREFIX)
            .and_then(|t| t.strip_suffix("\"}"))
            .ok_or("no MAC")?;
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| "a malformed MAC")?;
        let body = format!("{head}}}");
        self.mac(body.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| "a MAC that does not match this host's key")?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn signed_lines_verify_and_any_change_does_not() {
        let k = Key::fixed(7);
        let line = String::from_utf8(k.sign(br#"{"id":"a","netns":5}"#)).unwrap();
        assert!(line.starts_with(r#"{"id":"a","netns":5,"mac":""#), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["netns"], 5);
        assert_eq!(k.verify(&line).unwrap(), r#"{"id":"a","netns":5}"#);
        let forged = line.replace("\"netns\":5", "\"netns\":0");
        assert_eq!(
            k.verify(&forged),
            Err("a MAC that does not match this host's key")
        );
        assert!(Key::fixed(8).verify(&line).is_err(), "another host's key");
        assert_eq!(k.verify(r#"{"id":"a","netns":0}"#), Err("no MAC"));
        assert_eq!(k.verify(""), Err("no MAC"));
        let torn = &line[..line.len() - 3];
        assert!(k.verify(torn).is_err());
        // a multi-byte character where the MAC should start is no panic
        let odd = format!("{}é{}", "x".repeat(10), "y".repeat(SUFFIX_LEN - 1));
        assert!(k.verify(&odd).is_err());
    }

    #[test]
    fn key_is_created_once_0600_and_unsafe_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!(
            "guardian-key-{}-{}",
            std::process::id(),
            super::super::new_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Key::load(&dir).unwrap().is_none());
        let a = Key::load_or_create(&dir).unwrap();
        let path = dir.join(KEY_NAME);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let b = Key::load_or_create(&dir).unwrap();
        assert_eq!(a.0, b.0, "the same key on the next start");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&dir).unwrap_err().to_string();
        assert!(e.contains("others can read or write it (mode 644)"), "{e}");
        // a symlink planted in place of the key is refused, never followed
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(matches!(Key::load(&dir), Err(KeyError::Read { .. })));
        assert!(matches!(
            Key::load_or_create(&dir),
            Err(KeyError::Read { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Key::load(&dir).unwrap_err().to_string();
        assert!(e.contains("holds 5 bytes"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
