//! The audit log's background work: signed checkpoints of its head, and forwarding to
//! an audit repository. Both start with the server and stop after everything else
//! that records, so that the last checkpoint covers the last record and the forwarder
//! still sends it.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::checkpoint::{CheckpointError, CheckpointSigner};
use crate::audit::syslog::{SyslogError, SyslogForwarder, SyslogSettings};
use crate::auth::tls::TlsFiles;
use crate::store::{SharedStore, write_checkpoint};

/// What the server does for the audit log besides recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Between signed checkpoints of the head (one is also written at shutdown);
    /// `None` writes none.
    pub checkpoint_interval: Option<Duration>,
    /// Where to forward every record, if anywhere.
    pub syslog: Option<SyslogSettings>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_interval: Some(Duration::from_secs(300)),
            syslog: None,
        }
    }
}

/// The running tasks, each with the token that stops it.
pub struct AuditTasks {
    checkpoints: Option<(CancellationToken, JoinHandle<()>)>,
    forwarder: Option<(CancellationToken, JoinHandle<()>)>,
}

impl AuditTasks {
    /// Loads the signing key and the repository's TLS material, then starts the
    /// tasks; a problem with either is an error before anything runs.
    pub fn start(
        settings: &AuditSettings,
        tls: &TlsFiles,
        store: &SharedStore,
    ) -> Result<Self, AuditTaskError> {
        let signer = settings
            .checkpoint_interval
            .map(|interval| {
                CheckpointSigner::load(&tls.server_cert, &tls.server_key)
                    .map(|signer| (signer, interval))
            })
            .transpose()?;
        let forwarder = settings
            .syslog
            .clone()
            .map(|syslog| SyslogForwarder::new(syslog, store.clone()))
            .transpose()?;
        let checkpoints = signer.map(|(signer, interval)| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(keep_checkpoints(
                store.clone(),
                signer,
                interval,
                stop.clone(),
            ));
            (stop, task)
        });
        let forwarder = forwarder.map(|forwarder| {
            let stop = CancellationToken::new();
            (stop.clone(), tokio::spawn(forwarder.run(stop)))
        });
        Ok(Self {
            checkpoints,
            forwarder,
        })
    }

    /// Writes the last checkpoint, then lets the forwarder send what is left (within
    /// its drain timeout) and close.
    pub async fn stop(mut self) {
        for (stop, task) in [self.checkpoints.take(), self.forwarder.take()]
            .into_iter()
            .flatten()
        {
            stop.cancel();
            let _ = task.await;
        }
    }
}

impl Drop for AuditTasks {
    /// A server that fails to start still stops its tasks (without waiting for them).
    fn drop(&mut self) {
        for (stop, _) in [&self.checkpoints, &self.forwarder].into_iter().flatten() {
            stop.cancel();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditTaskError {
    #[error("audit checkpoints: {0} (set audit.checkpoint_interval_secs = 0 to run without)")]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Syslog(#[from] SyslogError),
}

async fn keep_checkpoints(
    store: SharedStore,
    signer: CheckpointSigner,
    interval: Duration,
    stop: CancellationToken,
) {
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => checkpoint(&store, &signer).await,
        }
    }
    checkpoint(&store, &signer).await;
}

async fn checkpoint(store: &SharedStore, signer: &CheckpointSigner) {
    match write_checkpoint(store.as_ref(), signer).await {
        Ok(Some(checkpoint)) => {
            tracing::debug!(seq = checkpoint.seq, "audit checkpoint written");
        }
        Ok(None) => {}
        Err(error) => tracing::error!(%error, "could not write an audit checkpoint"),
    }
}
