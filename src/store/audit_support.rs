//! What keeping the audit log needs besides appending and reading records: signed
//! checkpoints of its head (so that a cut tail is detectable), and how far each
//! forwarding destination (an audit repository) has received it. The log itself is
//! the forwarder's spool: nothing is copied, a destination just has a cursor.

use async_trait::async_trait;
use serde_json::json;

use super::{Result, Store, StoreError};
use crate::audit::checkpoint::{
    CHECKPOINT_ACTION, Checkpoint, CheckpointReport, CheckpointSigner, CheckpointVerifier,
};
use crate::audit::{Actor, AuditEntry, AuditRecord, Outcome};

#[async_trait]
pub trait AuditSupportStore: Send + Sync + 'static {
    /// The newest record, if any.
    async fn audit_head(&self) -> Result<Option<AuditRecord>>;
    /// Stores `checkpoint` with `audit`, the record that announces it, in one
    /// transaction. `Conflict` unless the log holds the checkpointed record with the
    /// checkpointed hash.
    async fn append_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        audit: AuditEntry,
    ) -> Result<AuditRecord>;
    /// The checkpoint of the highest seq (of those, the last stored).
    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>>;
    /// The last record `destination` is known to have received; 0 before the first.
    async fn forwarded_up_to(&self, destination: &str) -> Result<u64>;
    /// Notes that `destination` has received every record up to `seq`. The cursor
    /// never moves backwards, so two forwarders of one destination cannot rewind it.
    async fn set_forwarded_up_to(&self, destination: &str, seq: u64) -> Result<()>;
}

/// Signs the head of the log and stores the checkpoint with its announcing record,
/// unless nothing was recorded since the last checkpoint (whose record is then the
/// head). Returns the checkpoint written, if any.
pub async fn write_checkpoint(
    store: &dyn Store,
    signer: &CheckpointSigner,
) -> Result<Option<Checkpoint>> {
    let Some(head) = store.audit_head().await? else {
        return Ok(None);
    };
    if head.entry.action == CHECKPOINT_ACTION {
        return Ok(None);
    }
    let checkpoint = signer.sign(&head).map_err(StoreError::internal)?;
    let entry = AuditEntry::new(
        Actor::system("audit"),
        CHECKPOINT_ACTION,
        format!("audit:{}", head.seq),
        Outcome::Ok,
    )
    .details(json!({
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "signed_at_us": checkpoint.at.unix_timestamp_nanos() / 1_000,
        "signature": checkpoint.signature,
        "key_fingerprint": checkpoint.key_fingerprint,
    }));
    store.append_checkpoint(&checkpoint, entry).await?;
    Ok(Some(checkpoint))
}

/// Holds the latest checkpoint against the log and, given one, the broker's
/// certificate. `None` when no checkpoint was ever written.
pub async fn check_latest_checkpoint(
    store: &dyn Store,
    verifier: Option<&CheckpointVerifier>,
) -> Result<Option<CheckpointReport>> {
    let Some(checkpoint) = store.latest_checkpoint().await? else {
        return Ok(None);
    };
    let record = store.audit_record(checkpoint.seq).await?;
    Ok(Some(CheckpointReport::new(
        checkpoint,
        record.as_ref(),
        verifier,
    )))
}
