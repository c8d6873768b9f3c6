//! Audit checkpoints and forwarding cursors in PostgreSQL.

use async_trait::async_trait;
use tracing::instrument;

use super::error::postgres_error;
use super::query::{self, column};
use super::{PostgresStore, audit, begin, commit};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{AuditEntry, AuditRecord};
use crate::store::rows;
use crate::store::{AuditSupportStore, Result, StoreError};

fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[async_trait]
impl AuditSupportStore for PostgresStore {
    async fn audit_head(&self) -> Result<Option<AuditRecord>> {
        let client = self.client().await?;
        let row = query::one(&client, "SELECT max(seq) FROM audit_log", &[])
            .await
            .map_err(postgres_error)?;
        let Some(seq) = column::<Option<i64>>(&row, 0)? else {
            return Ok(None);
        };
        let records = audit::records(&client, (seq - 1).max(0) as u64, 1).await?;
        Ok(records.into_iter().next())
    }

    #[instrument(skip_all, fields(seq = checkpoint.seq))]
    async fn append_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        audit: AuditEntry,
    ) -> Result<AuditRecord> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let stored = query::optional(
            &transaction,
            "SELECT hash FROM audit_log WHERE seq = $1",
            &[&seq_column(checkpoint.seq)],
        )
        .await
        .map_err(postgres_error)?;
        let stored: Option<String> = stored.map(|row| column(&row, 0)).transpose()?;
        if stored.as_deref() != Some(checkpoint.hash.as_str()) {
            return Err(StoreError::Conflict(format!(
                "checkpoint {} does not match the log",
                checkpoint.seq
            )));
        }
        query::execute(
            &transaction,
            "INSERT INTO audit_checkpoints (seq, hash, at_us, signature, key_fingerprint)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &seq_column(checkpoint.seq),
                &checkpoint.hash,
                &rows::micros(checkpoint.at),
                &checkpoint.signature,
                &checkpoint.key_fingerprint,
            ],
        )
        .await
        .map_err(postgres_error)?;
        let record = audit::append(&transaction, audit).await?;
        commit(transaction).await?;
        Ok(record)
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let client = self.client().await?;
        let row = query::optional(
            &client,
            "SELECT seq, hash, at_us, signature, key_fingerprint FROM audit_checkpoints
             ORDER BY seq DESC, id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(postgres_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seq: i64 = column(&row, 0)?;
        Ok(Some(Checkpoint {
            seq: u64::try_from(seq).map_err(|_| StoreError::corrupt("stored checkpoint seq"))?,
            hash: column(&row, 1)?,
            at: rows::instant(column(&row, 2)?)?,
            signature: column(&row, 3)?,
            key_fingerprint: column(&row, 4)?,
        }))
    }

    async fn forwarded_up_to(&self, destination: &str) -> Result<u64> {
        let client = self.client().await?;
        let row = query::optional(
            &client,
            "SELECT seq FROM audit_forwarding WHERE destination = $1",
            &[&destination],
        )
        .await
        .map_err(postgres_error)?;
        let seq: i64 = row.map(|row| column(&row, 0)).transpose()?.unwrap_or(0);
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    async fn set_forwarded_up_to(&self, destination: &str, seq: u64) -> Result<()> {
        let client = self.client().await?;
        query::execute(
            &client,
            "INSERT INTO audit_forwarding (destination, seq, updated_at_us)
             VALUES ($1, $2, $3)
             ON CONFLICT (destination) DO UPDATE
             SET seq = GREATEST(audit_forwarding.seq, excluded.seq),
                 updated_at_us = excluded.updated_at_us",
            &[
                &destination,
                &seq_column(seq),
                &rows::micros(crate::audit::now_micros()),
            ],
        )
        .await
        .map_err(postgres_error)?;
        Ok(())
    }
}
