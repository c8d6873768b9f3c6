//! One thread owns the SQLite connection that writes. Callers hand it jobs; it runs
//! the jobs that are waiting in one transaction (each in its own savepoint, so one
//! failing job does not undo the others) and commits once: a group commit, so that
//! durable commits (synchronous=FULL) are paid once per batch rather than per call.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::{Result, StoreError};

/// How many waiting jobs one transaction takes at most.
const MAX_BATCH: usize = 128;

trait WriteJob: Send {
    /// Runs inside the open transaction; returns whether the job succeeded.
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = work(connection);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            // The job's own error explains more than the failed commit.
            (Err(_), Some(Err(error))) => Err(error),
            (Err(error), _) => Err(error),
            (Ok(()), None) => Err(StoreError::Unavailable("write was not run".into())),
        };
        // The caller may have gone away (a cancelled RPC); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
}

impl Writer {
    pub fn start(connection: Connection) -> Writer {
        let (jobs, queue) = mpsc::channel();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queue))
            .expect("spawning the sqlite writer thread");
        Writer { jobs }
    }

    /// Runs `work` in a write transaction and returns its result once committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?
    }
}

fn run(connection: Connection, queue: mpsc::Receiver<Box<dyn WriteJob>>) {
    // The loop ends when every `Writer` handle has been dropped, after the jobs already
    // queued have been committed.
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = run_batch(&connection, &mut batch);
        for job in batch {
            let outcome = match &committed {
                Ok(()) => Ok(()),
                Err(message) => Err(StoreError::Unavailable(message.clone())),
            };
            job.finish(outcome);
        }
    }
}

fn run_batch(
    connection: &Connection,
    batch: &mut [Box<dyn WriteJob>],
) -> std::result::Result<(), String> {
    let mut attempt = || -> rusqlite::Result<()> {
        connection.execute_batch("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            connection.execute_batch("SAVEPOINT job")?;
            if job.run(connection) {
                connection.execute_batch("RELEASE job")?;
            } else {
                connection.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
        }
        connection.execute_batch("COMMIT")
    };
    attempt().map_err(|error| {
        tracing::error!(%error, "sqlite write transaction failed");
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        "the write could not be committed".to_owned()
    })
}
