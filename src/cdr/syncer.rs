//! Where the CDR file's `fdatasync` runs. On the writer's thread a slow sync (a disk busy
//! with recordings, ext4 waiting for its journal) would hold up the writes that already make
//! a CDR safe from a crash of the process: records would wait in memory, where a `kill -9`
//! loses them. So the writer asks a thread of its own for each sync and goes on writing;
//! the sink learns the outcome at its next tick. Tests of the file logic sync inline.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};

use super::fs::SyncHandle;

/// One sync asked for: which one, and the file's handle to sync.
pub(super) struct Job {
    pub ticket: u64,
    pub handle: Box<dyn SyncHandle>,
}

/// What became of sync `ticket`.
#[derive(Debug)]
pub(super) struct Done {
    pub ticket: u64,
    pub result: io::Result<()>,
}

pub(super) enum Syncer {
    /// Each sync runs when it is asked for; its outcome is read at once.
    Inline(Option<Done>),
    /// Syncs run on the `cdr-sync` thread, one at a time.
    Thread {
        jobs: SyncSender<Job>,
        done: Receiver<Done>,
    },
}

impl Syncer {
    pub fn inline() -> Syncer {
        Syncer::Inline(None)
    }

    /// A thread of its own; it ends when the syncer is dropped (or, stuck in the disk, is
    /// left behind with it).
    pub fn thread() -> io::Result<Syncer> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(1);
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("cdr-sync".into())
            .spawn(move || {
                for mut job in rx {
                    let result = job.handle.sync();
                    if tx
                        .send(Done {
                            ticket: job.ticket,
                            result,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(Syncer::Thread { jobs, done })
    }

    /// Start `job`. The caller has no other sync outstanding. A thread that is gone (it
    /// cannot be, but a sync must not be lost if it were) has the job run here.
    pub fn start(&mut self, job: Job) {
        match self {
            Syncer::Inline(slot) => *slot = Some(run(job)),
            Syncer::Thread { jobs, .. } => {
                if let Err(e) = jobs.try_send(job) {
                    let job = match e {
                        mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j,
                    };
                    *self = Syncer::Inline(Some(run(job)));
                }
            }
        }
    }

    /// The outcome of sync `ticket`, the one outstanding, if it has come.
    pub fn poll(&mut self, ticket: u64) -> Option<Done> {
        match self {
            Syncer::Inline(slot) => slot.take(),
            Syncer::Thread { done, .. } => match done.try_recv() {
                Ok(d) => Some(d),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(stopped(ticket)),
            },
        }
    }

    /// Wait for the outcome of sync `ticket`, the one outstanding (a rotation, the exit:
    /// the writer then syncs the file itself, after it).
    pub fn wait(&mut self, ticket: u64) -> Done {
        match self {
            Syncer::Inline(slot) => slot.take().unwrap_or_else(|| stopped(ticket)),
            Syncer::Thread { done, .. } => done.recv().unwrap_or_else(|_| stopped(ticket)),
        }
    }
}

/// A sync whose outcome cannot be known: failed, so its lines are written again.
fn stopped(ticket: u64) -> Done {
    Done {
        ticket,
        result: Err(io::Error::other("the CDR sync thread stopped")),
    }
}

fn run(mut job: Job) -> Done {
    Done {
        ticket: job.ticket,
        result: job.handle.sync(),
    }
}
