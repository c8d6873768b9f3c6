//! Audit checkpoints and forwarding cursors in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tracing::instrument;

use super::{SqliteStore, append_audit, audit_row, sqlite_error};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{AuditEntry, AuditRecord};
use crate::store::rows::{self, AuditRow};
use crate::store::{AuditSupportStore, Result, StoreError};

fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn stored_hash(connection: &Connection, seq: u64) -> Result<Option<String>> {
    connection
        .query_row(
            "SELECT hash FROM audit_log WHERE seq = ?1",
            [seq_column(seq)],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_error)
}

#[async_trait]
impl AuditSupportStore for SqliteStore {
    async fn audit_head(&self) -> Result<Option<AuditRecord>> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT seq, at_us, actor_user, actor_institution, actor_role,
                            actor_fingerprint, action, target, target_institution, outcome,
                            details, prev_hash, hash
                     FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    audit_row,
                )
                .optional()
                .map(|row| row.map(AuditRow::into_record))
                .map_err(sqlite_error)
        })
        .await
    }

    #[instrument(skip_all, fields(seq = checkpoint.seq))]
    async fn append_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        audit: AuditEntry,
    ) -> Result<AuditRecord> {
        let checkpoint = checkpoint.clone();
        self.writer
            .write(move |connection| {
                if stored_hash(connection, checkpoint.seq)?.as_deref()
                    != Some(checkpoint.hash.as_str())
                {
                    return Err(StoreError::Conflict(format!(
                        "checkpoint {} does not match the log",
                        checkpoint.seq
                    )));
                }
                connection
                    .execute(
                        "INSERT INTO audit_checkpoints (seq, hash, at_us, signature, key_fingerprint)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            seq_column(checkpoint.seq),
                            checkpoint.hash,
                            rows::micros(checkpoint.at),
                            checkpoint.signature,
                            checkpoint.key_fingerprint
                        ],
                    )
                    .map_err(sqlite_error)?;
                append_audit(connection, audit)
            })
            .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.read(|connection| {
            let row = connection
                .query_row(
                    "SELECT seq, hash, at_us, signature, key_fingerprint FROM audit_checkpoints
                     ORDER BY seq DESC, id DESC LIMIT 1",
                    [],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(sqlite_error)?;
            row.map(|(seq, hash, at_us, signature, key_fingerprint)| {
                Ok(Checkpoint {
                    seq: u64::try_from(seq)
                        .map_err(|_| StoreError::corrupt("stored checkpoint seq"))?,
                    hash,
                    at: rows::instant(at_us)?,
                    signature,
                    key_fingerprint,
                })
            })
            .transpose()
        })
        .await
    }

    async fn forwarded_up_to(&self, destination: &str) -> Result<u64> {
        let destination = destination.to_owned();
        self.read(move |connection| {
            let seq: Option<i64> = connection
                .query_row(
                    "SELECT seq FROM audit_forwarding WHERE destination = ?1",
                    [destination],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sqlite_error)?;
            Ok(seq.map_or(0, |seq| u64::try_from(seq).unwrap_or(0)))
        })
        .await
    }

    async fn set_forwarded_up_to(&self, destination: &str, seq: u64) -> Result<()> {
        let destination = destination.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO audit_forwarding (destination, seq, updated_at_us)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (destination) DO UPDATE
                         SET seq = max(seq, excluded.seq), updated_at_us = excluded.updated_at_us",
                        params![
                            destination,
                            seq_column(seq),
                            rows::micros(crate::audit::now_micros())
                        ],
                    )
                    .map_err(sqlite_error)?;
                Ok(())
            })
            .await
    }
}
