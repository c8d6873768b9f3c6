//! The audit log in PostgreSQL. Appenders on every broker node order themselves by
//! locking the one row of `audit_head`, which holds the chain's last seq and hash.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::error::postgres_error;
use super::query::{self, column};
use crate::audit::{AuditEntry, AuditRecord, chain};
use crate::store::rows::{AuditRow, micros};
use crate::store::{AuditQuery, Result};

/// Appends `entry` to the chain inside the caller's transaction. The head stays locked
/// until that transaction ends, so records commit in the order of their seq.
pub async fn append(transaction: &Transaction<'_>, entry: AuditEntry) -> Result<AuditRecord> {
    let head = query::one(
        transaction,
        "SELECT seq, hash FROM audit_head WHERE singleton FOR UPDATE",
        &[],
    )
    .await
    .map_err(postgres_error)?;
    let seq: i64 = column(&head, 0)?;
    let hash: String = column(&head, 1)?;
    // The head of an empty log is seq 0 with the genesis hash.
    let previous = (seq > 0).then_some((seq as u64, hash.as_str()));
    let record = chain::seal(previous, entry);
    let row = AuditRow::from_record(&record);
    query::execute(
        transaction,
        "INSERT INTO audit_log (seq, at_us, actor_user, actor_institution, actor_role,
             actor_fingerprint, action, target, target_institution, outcome, details,
             prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &row.seq,
            &row.at_us,
            &row.actor_user,
            &row.actor_institution,
            &row.actor_role,
            &row.actor_fingerprint,
            &row.action,
            &row.target,
            &row.target_institution,
            &row.outcome,
            &row.details,
            &row.prev_hash,
            &row.hash,
        ],
    )
    .await
    .map_err(postgres_error)?;
    query::execute(
        transaction,
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE singleton",
        &[&row.seq, &row.hash],
    )
    .await
    .map_err(postgres_error)?;
    Ok(record)
}

/// Up to `limit` records with `seq > after`, in chain order.
pub async fn records(
    client: &impl GenericClient,
    after: u64,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let rows = query::rows(
        client,
        "SELECT seq, at_us, actor_user, actor_institution, actor_role, actor_fingerprint,
                action, target, target_institution, outcome, details, prev_hash, hash
         FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&i64::try_from(after).unwrap_or(i64::MAX), &i64::from(limit)],
    )
    .await
    .map_err(postgres_error)?;
    rows.iter()
        .map(|row| audit_row(row).map(AuditRow::into_record))
        .collect()
}

/// The records `query` selects, in its order.
pub async fn select(client: &impl GenericClient, filter: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    let cursor = if filter.newest_first {
        "seq < $9"
    } else {
        "seq > $9"
    };
    let sql = format!(
        "SELECT seq, at_us, actor_user, actor_institution, actor_role, actor_fingerprint,
                action, target, target_institution, outcome, details, prev_hash, hash
         FROM audit_log
         WHERE ($1::BIGINT IS NULL OR at_us >= $1)
           AND ($2::BIGINT IS NULL OR at_us < $2)
           AND ($3::TEXT IS NULL OR actor_institution = $3 OR target_institution = $3
                OR (target LIKE 'consultation:%' AND EXISTS (
                    SELECT 1 FROM consultations c
                    WHERE 'consultation:' || c.id = audit_log.target
                      AND (c.inviting_institution_id = $3 OR c.consulting_institution_id = $3))))
           AND ($4::TEXT IS NULL OR actor_user = $4)
           AND ($5::TEXT IS NULL OR actor_role = $5)
           AND ($6::TEXT IS NULL OR target = $6)
           AND ($7::TEXT IS NULL OR action = $7)
           AND ($8::TEXT IS NULL OR outcome = $8)
           AND ($9::BIGINT IS NULL OR {cursor})
         ORDER BY seq {order}
         LIMIT $10"
    );
    let rows = query::rows(
        client,
        &sql,
        &[
            &filter.from.map(micros),
            &filter.to.map(micros),
            &filter.institution,
            &filter.user,
            &filter.role,
            &filter.target,
            &filter.action,
            &filter.outcome.map(|o| o.as_str()),
            &filter
                .after_seq
                .map(|seq| i64::try_from(seq).unwrap_or(i64::MAX)),
            &i64::from(filter.limit.get()),
        ],
    )
    .await
    .map_err(postgres_error)?;
    rows.iter()
        .map(|row| audit_row(row).map(AuditRow::into_record))
        .collect()
}

fn audit_row(row: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: column(row, 0)?,
        at_us: column(row, 1)?,
        actor_user: column(row, 2)?,
        actor_institution: column(row, 3)?,
        actor_role: column(row, 4)?,
        actor_fingerprint: column(row, 5)?,
        action: column(row, 6)?,
        target: column(row, 7)?,
        target_institution: column(row, 8)?,
        outcome: column(row, 9)?,
        details: column(row, 10)?,
        prev_hash: column(row, 11)?,
        hash: column(row, 12)?,
    })
}
