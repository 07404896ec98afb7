//! A long-lived thread that enters namespaces one after the other (`setns(2)`) and returns to
//! the daemon's namespace after every job. Sampling hundreds of namespaces per tick this way
//! costs one `open` and one `setns` per namespace instead of a thread spawned and joined per
//! namespace (see docs/benchmarks.md, "scale"). No namespace file stays open between jobs: an
//! open one would keep a deleted namespace alive.
use std::fs::File;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};

type Job = Box<dyn FnOnce(&mut Entered) + Send>;

/// The worker thread's handle on where it is.
pub struct Entered {
    home: File,
    away: bool,
}

impl Entered {
    /// Enters the namespace at `ns`, or returns to the daemon's when `ns` is None.
    pub fn enter(&mut self, ns: Option<&Path>) -> io::Result<()> {
        match ns {
            None if !self.away => Ok(()),
            None => {
                setns(&self.home, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                self.away = false;
                Ok(())
            }
            Some(p) => {
                let f = File::open(p)?;
                setns(f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                self.away = true;
                Ok(())
            }
        }
    }
}

/// One long-lived thread; jobs run one at a time, in order.
pub struct Worker {
    tx: Option<mpsc::Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread (named `name`) in the caller's namespace.
    pub fn new(name: &str) -> io::Result<Self> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut at = Entered { home, away: false };
                for job in rx {
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&mut at)));
                    if at.enter(None).is_err() {
                        // Stuck in another namespace: stop; the next job fails and the owner
                        // starts a new worker.
                        tracing::warn!("namespace worker could not return home; restarting it");
                        return;
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Runs `f` on the worker and waits for its result. The worker is back in the daemon's
    /// namespace afterwards, whatever `f` entered.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Entered) -> T + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |at| {
            let _ = rtx.send(f(at));
        });
        let gone = || io::Error::other("namespace worker is gone");
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        rrx.recv()
            .map_err(|_| io::Error::other("namespace worker job panicked"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_in_order_and_survives_a_panic() {
        let w = Worker::new("gd-test-ns").unwrap();
        assert_eq!(w.run(|_| 1 + 1).unwrap(), 2);
        assert!(w.run(|_| -> u32 { panic!("boom") }).is_err());
        // The own namespace as a path: entering it needs no privilege beyond CAP_SYS_ADMIN,
        // so only check that staying home works everywhere.
        let home = w
            .run(|at| {
                at.enter(None)?;
                super::super::current()
            })
            .unwrap()
            .unwrap();
        assert_eq!(home, super::super::current().unwrap());
    }
}
