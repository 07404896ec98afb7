//! The daemon's end of the socket: bind (0600, in a 0700 directory), accept, check the
//! peer's credentials, read one bounded request, answer.
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::handlers::{self, Ctx};
use super::protocol::{self, MAX_REQUEST};

/// Connections served at once; more get one error line.
pub const MAX_CONNECTIONS: usize = 16;
/// `events --follow` clients at once, on their own limit: once its request is read, a
/// follower gives its connection slot back, so followers never lock out `rollback`, `mode`
/// or `status`.
pub const MAX_FOLLOWERS: usize = 16;
/// How long a client has to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the control socket directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the control socket's directory {} is {why}: anyone could put their own socket in guardian's place; run `chmod go-w {}`", path.display(), path.display())]
    UnsafeDir { path: PathBuf, why: String },
    #[error("another guardian answers on {}: stop it or pass --socket PATH", path.display())]
    InUse { path: PathBuf },
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The socket file; removed when dropped if it is still the one this daemon created.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the socket: the parent directory (0700) if missing; a stale socket nobody answers
/// on is removed; the new one is bound under a temporary name, made 0600 and renamed into
/// place, so it is never reachable with looser permissions.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(m) = std::fs::metadata(dir) {
            let mode = m.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(ServerError::UnsafeDir {
                    path: dir.to_path_buf(),
                    why: format!("writable by group or others (mode {mode:o})"),
                });
            }
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| ServerError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse {
                path: path.to_path_buf(),
            });
        }
        tracing::info!(path = %path.display(), "removing a stale control socket");
        let _ = std::fs::remove_file(path);
    }
    let bind_err = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let std_listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(bind_err)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| std_listener.set_nonblocking(true))
        .and_then(|()| std::fs::symlink_metadata(path));
    let meta = match placed {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(bind_err(e));
        }
    };
    let listener = UnixListener::from_std(std_listener).map_err(bind_err)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            ino: meta.ino(),
        },
    ))
}

/// Binds the socket and serves it in a task until `stop` is cancelled. An explicit `--socket`
/// that cannot be used is an error; when the default one is taken by another guardian (or
/// cannot be created), this daemon runs without a control socket and says so.
pub fn start(
    explicit: Option<&Path>,
    ctx: Ctx,
    stop: CancellationToken,
) -> Result<Option<SocketFile>, ServerError> {
    let path = explicit.unwrap_or(Path::new(super::DEFAULT_SOCKET));
    match bind(path) {
        Ok((listener, file)) => {
            tracing::info!(path = %path.display(), "control socket listening");
            tokio::spawn(serve(listener, ctx, stop));
            Ok(Some(file))
        }
        Err(e) if explicit.is_none() && !matches!(e, ServerError::UnsafeDir { .. }) => {
            tracing::warn!("{e}; running without a control socket");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Accepts connections until `stop` is cancelled.
pub async fn serve(listener: UnixListener, ctx: Ctx, stop: CancellationToken) {
    let ctx = Arc::new(ctx);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let followers = Arc::new(tokio::sync::Semaphore::new(MAX_FOLLOWERS));
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut s = stream;
            let line = protocol::error(&format!(
                "too many control connections ({MAX_CONNECTIONS}); try again later"
            ));
            let _ = tokio::time::timeout(READ_TIMEOUT, s.write_all(line.as_bytes())).await;
            continue;
        };
        let ctx = ctx.clone();
        let followers = followers.clone();
        tokio::spawn(async move {
            connection(stream, &ctx, permit, &followers).await;
        });
    }
}

/// Whether a peer uid may use the socket: root, or the daemon's own effective uid.
pub fn allowed(peer_uid: u32, own_euid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_euid
}

async fn connection(
    mut stream: UnixStream,
    ctx: &Ctx,
    permit: tokio::sync::OwnedSemaphorePermit,
    followers: &Arc<tokio::sync::Semaphore>,
) {
    let uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(e) => {
            tracing::warn!("control connection without readable peer credentials refused: {e}");
            return;
        }
    };
    if !allowed(uid, ctx.own_uid) {
        let pid = stream.peer_cred().ok().and_then(|c| c.pid());
        tracing::warn!(uid, pid = %crate::logging::json(&pid), "control connection refused: permission denied");
        let line = protocol::error(&format!("permission denied: uid {uid} is not allowed"));
        let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(line.as_bytes())).await;
        return;
    }
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let read = {
        let mut limited = (&mut rd).take(MAX_REQUEST as u64 + 1);
        tokio::time::timeout(READ_TIMEOUT, limited.read_until(b'\n', &mut buf)).await
    };
    let answer = match read {
        Err(_) => protocol::error(&format!(
            "no request line within {} s",
            READ_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => protocol::error(&format!("cannot read the request: {e}")),
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            match protocol::decode(line) {
                Ok(protocol::Request::Events(filter)) => {
                    let Ok(follower) = followers.clone().try_acquire_owned() else {
                        let line = protocol::error(&format!(
                            "too many `events --follow` clients ({MAX_FOLLOWERS}); try again later"
                        ));
                        let _ = wr.write_all(line.as_bytes()).await;
                        return;
                    };
                    drop(permit);
                    handlers::events(ctx, filter, rd, wr).await;
                    drop(follower);
                    return;
                }
                Ok(req) => handlers::answer(ctx, req).await,
                Err(e) => protocol::error(&e),
            }
        }
    };
    let _ = wr.write_all(answer.as_bytes()).await;
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_uid() {
        assert!(allowed(0, 1000));
        assert!(allowed(1000, 1000));
        assert!(!allowed(65534, 1000));
        assert!(!allowed(65534, 0));
    }
}
