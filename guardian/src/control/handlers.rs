//! One function per request: ask the engine (through its command channel) or the tally, and
//! encode the answer as one response line.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::oneshot;

use super::history;
use super::protocol::{self, EventFilter, Request};
use crate::engine::api::{Handle, Request as EngineRequest, Tally};

/// How long a request may wait for the engine (a heal verifies inline).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `status` waits for the engine before it answers with the engine's last
/// published state (marked `stale_ms`): an operator's `status` must answer during a storm
/// even when one of the engine's steps takes seconds.
const STATUS_WAIT: Duration = Duration::from_millis(50);

/// What every connection shares.
pub struct Ctx {
    pub engine: Handle,
    pub tally: Tally,
    /// A receiver of the live event tap, only ever resubscribed (it never reads, so it holds
    /// nothing back).
    pub tap: broadcast::Receiver<Arc<str>>,
    pub state_dir: PathBuf,
    pub own_uid: u32,
}

impl Ctx {
    pub fn new(
        engine: Handle,
        tally: Tally,
        emitter: &crate::output::Emitter,
        state_dir: PathBuf,
    ) -> Ctx {
        Ctx {
            engine,
            tally,
            tap: emitter.subscribe(),
            state_dir,
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Sends a request to the engine and waits for its reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> EngineRequest,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.engine
            .send(make(tx))
            .await
            .map_err(|_| "the remediation engine is not running".to_string())?;
        match tokio::time::timeout(ENGINE_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("the remediation engine stopped before answering".into()),
            Err(_) => Err(format!(
                "the remediation engine did not answer within {} s",
                ENGINE_TIMEOUT.as_secs()
            )),
        }
    }
}

fn line(r: Result<Value, String>) -> String {
    match r {
        Ok(v) => protocol::ok(v),
        Err(e) => protocol::error(&e),
    }
}

/// Answers every request but `events`.
pub async fn answer(ctx: &Ctx, req: Request) -> String {
    line(match req {
        Request::Status {} => status(ctx).await.map(|s| json!({ "status": s })),
        Request::Stats {} => stats(ctx).await,
        Request::History { limit, since_s } => history(ctx, limit, since_s).await,
        Request::Mode { mode } => ctx
            .ask(|tx| EngineRequest::Mode(mode, tx))
            .await
            .and_then(|r| r),
        Request::Heal { fault, subject } => ctx
            .ask(|reply| EngineRequest::Heal {
                fault,
                subject,
                reply,
            })
            .await
            .and_then(|r| r),
        Request::Rollback { id, .. } => ctx
            .ask(|tx| EngineRequest::Rollback(id, tx))
            .await
            .and_then(|r| r),
        Request::Baseline { accept, prefix } => ctx
            .ask(|reply| EngineRequest::Baseline {
                accept,
                prefix,
                reply,
            })
            .await
            .and_then(|r| r),
        Request::Events(_) => Err("events is a stream; it is served elsewhere".into()),
    })
}

/// The engine's answer, or its last published state if it is busy for more than
/// [`STATUS_WAIT`] (or, before it published one, its answer however long it takes).
async fn status(ctx: &Ctx) -> Result<crate::engine::api::Status, String> {
    if let Ok(answer) = tokio::time::timeout(STATUS_WAIT, ctx.ask(EngineRequest::Status)).await {
        return answer;
    }
    match ctx.tally.published(Instant::now()) {
        Some(s) => Ok(s),
        None => ctx.ask(EngineRequest::Status).await,
    }
}

async fn stats(ctx: &Ctx) -> Result<Value, String> {
    let status = status(ctx).await?;
    let mut s = ctx.tally.stats(Instant::now());
    s.rates = status.remedies;
    Ok(json!({ "stats": s }))
}

async fn history(ctx: &Ctx, limit: Option<usize>, since_s: Option<u64>) -> Result<Value, String> {
    let since = since_s.map(Duration::from_secs);
    let mut h = history::from_journal(&ctx.state_dir, limit, since)?;
    let incidents = ctx.ask(EngineRequest::Incidents).await?;
    h.incidents = history::recent(incidents, limit, since);
    Ok(json!({ "history": h }))
}

/// `events`: an ok line, then every matching event line until the client hangs up or the
/// daemon's last event (`detached`) was sent; `{"v":1,"missed":N}` when this client fell N
/// lines behind.
pub async fn events(
    ctx: &Ctx,
    filter: EventFilter,
    mut rd: tokio::io::BufReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
) {
    let mut rx = ctx.tap.resubscribe();
    if wr
        .write_all(protocol::ok(json!({"stream": "events"})).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut sink = [0u8; 64];
    loop {
        let out = tokio::select! {
            // Anything the client sends, or its hang-up, ends the stream.
            _ = rd.read(&mut sink) => break,
            r = rx.recv() => match r {
                Ok(l) => {
                    let keep = serde_json::from_str::<Value>(&l).is_ok_and(|v| filter.matches(&v));
                    if !keep {
                        continue;
                    }
                    format!("{l}\n")
                }
                Err(RecvError::Lagged(n)) => protocol::missed(n),
                Err(RecvError::Closed) => break,
            },
        };
        if wr.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::api::Status;
    use crate::engine::api::{Request as EngineRequest, Wiring};

    #[tokio::test]
    async fn status_answers_from_the_published_state_while_the_engine_is_busy() {
        let tally = Tally::default();
        // An engine that takes its requests but is too busy to answer them.
        let (handle, wiring) = Wiring::channel(tally.clone());
        let (emitter, _writer) = crate::output::open(None, "h".into()).await.unwrap();
        let ctx = Ctx::new(handle, tally.clone(), &emitter, std::env::temp_dir());
        tally.publish(
            Instant::now(),
            Status {
                mode: "enforce".into(),
                ..Status::default()
            },
        );
        let t = Instant::now();
        let s = status(&ctx).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(s.mode, "enforce");
        assert!(s.stale_ms.is_some());
        drop(wiring);
    }

    #[tokio::test]
    async fn status_waits_for_a_slow_engine_when_nothing_was_published() {
        let tally = Tally::default();
        let (handle, mut wiring) = Wiring::channel(tally.clone());
        let (emitter, _writer) = crate::output::open(None, "h".into()).await.unwrap();
        let ctx = Ctx::new(handle, tally, &emitter, std::env::temp_dir());
        let engine = tokio::spawn(async move {
            // Answers the second request (the first one timed out) after 100 ms each.
            while let Some(EngineRequest::Status(tx)) = wiring.rx.recv().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx.send(Status {
                    mode: "observe".into(),
                    ..Status::default()
                });
            }
        });
        let s = status(&ctx).await.unwrap();
        assert_eq!((s.mode.as_str(), s.stale_ms), ("observe", None));
        drop(ctx);
        engine.await.unwrap();
    }
}
