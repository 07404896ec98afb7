//! The client's end: connect, send one request line, read the answer (or a stream of lines).
//! Blocking std I/O: one request per process needs no async runtime.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{self, Request};

/// How long a client waits for an answer (a heal verifies inline; the daemon gives up at 120 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(130);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("guardian is not running (no answer on {})", .0.display())]
    NotRunning(PathBuf),
    #[error("{0}")]
    PermissionDenied(String),
    /// The daemon refused the request (its one sentence).
    #[error("{0}")]
    Refused(String),
    #[error("the control socket {path}: {1}", path = .0.display())]
    Io(PathBuf, String),
}

impl ClientError {
    /// sysexits: 69 no daemon, 77 permission, 65 refused request, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning(_) => 69,
            ClientError::PermissionDenied(_) => 77,
            ClientError::Refused(_) => 65,
            ClientError::Io(..) => 1,
        }
    }
}

fn connect(path: &Path) -> Result<UnixStream, ClientError> {
    use std::io::ErrorKind::*;
    UnixStream::connect(path).map_err(|e| match e.kind() {
        NotFound | ConnectionRefused => ClientError::NotRunning(path.to_path_buf()),
        PermissionDenied => ClientError::PermissionDenied(format!(
            "permission denied: cannot connect to {} (run as root or as the daemon's user)",
            path.display()
        )),
        _ => ClientError::Io(path.to_path_buf(), e.to_string()),
    })
}

/// Interprets one response line: the fields of an ok answer, or the daemon's sentence.
pub fn parse_answer(path: &Path, line: &str) -> Result<Value, ClientError> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| ClientError::Io(path.to_path_buf(), format!("unreadable answer ({e})")))?;
    if v["ok"] == true {
        return Ok(v);
    }
    let e = v["error"]
        .as_str()
        .unwrap_or("the daemon refused the request")
        .to_string();
    Err(if e.starts_with("permission denied") {
        ClientError::PermissionDenied(e)
    } else {
        ClientError::Refused(e)
    })
}

fn send(path: &Path, req: &Request) -> Result<BufReader<UnixStream>, ClientError> {
    let mut s = connect(path)?;
    let io = |e: std::io::Error| ClientError::Io(path.to_path_buf(), e.to_string());
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    // A refused peer may find the socket already closed: read its error line anyway.
    let _ = s.write_all(protocol::encode(req).as_bytes());
    Ok(BufReader::new(s))
}

fn read_line(path: &Path, r: &mut BufReader<UnixStream>) -> Result<String, ClientError> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err(ClientError::Io(
            path.to_path_buf(),
            "the daemon closed the connection without answering".into(),
        )),
        Ok(_) => Ok(line),
        Err(e) => Err(ClientError::Io(path.to_path_buf(), e.to_string())),
    }
}

/// One request, one answer.
pub fn request(path: &Path, req: &Request) -> Result<Value, ClientError> {
    let mut r = send(path, req)?;
    let line = read_line(path, &mut r)?;
    parse_answer(path, &line)
}

/// A streaming request (`events`): calls `each` with every line after the ok line until the
/// daemon closes the stream or `each` returns false.
pub fn stream(
    path: &Path,
    req: &Request,
    mut each: impl FnMut(&str) -> bool,
) -> Result<(), ClientError> {
    let mut r = send(path, req)?;
    r.get_ref()
        .set_read_timeout(None)
        .map_err(|e| ClientError::Io(path.to_path_buf(), e.to_string()))?;
    let first = read_line(path, &mut r)?;
    parse_answer(path, &first)?;
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                if !each(line.trim_end()) {
                    return Ok(());
                }
            }
            Err(e) => return Err(ClientError::Io(path.to_path_buf(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_exit_codes() {
        let p = Path::new("/x.sock");
        assert!(parse_answer(p, "{\"v\":1,\"ok\":true}").is_ok());
        let e = parse_answer(
            p,
            "{\"ok\":false,\"error\":\"permission denied: uid 7 is not allowed\"}",
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 77);
        let e = parse_answer(
            p,
            "{\"v\":1,\"ok\":false,\"error\":\"no open link_down incident on x\"}",
        )
        .unwrap_err();
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (65, "no open link_down incident on x")
        );
        let e = connect(Path::new("/nonexistent/guardian.sock")).unwrap_err();
        assert_eq!(e.exit_code(), 69);
        assert_eq!(
            e.to_string(),
            "guardian is not running (no answer on /nonexistent/guardian.sock)"
        );
    }
}
