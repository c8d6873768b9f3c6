//! Opinion reports in PostgreSQL: drafts that may be rewritten, and signed versions
//! that the database itself keeps from changing.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::super::error::postgres_error;
use super::super::query::{self, column};
use crate::domain::consultation::ConsultationId;
use crate::domain::opinion::OpinionReport;
use crate::store::rows::{OpinionRow, micros};
use crate::store::{Result, StoreError, StoredOpinion};

fn signed_already(report: &OpinionReport) -> StoreError {
    StoreError::Concurrent {
        entity: "opinion report",
        id: format!("{} version {}", report.consultation, report.version),
    }
}

/// Every version, oldest first.
pub async fn load(
    client: &impl GenericClient,
    consultation: &ConsultationId,
) -> Result<Vec<StoredOpinion>> {
    query::rows(
        client,
        "SELECT consultation_id, version, diagnosis_impression, recommendations, follow_up,
                author_id, supersedes_version, created_at_us, signed_at_us, content_hash,
                audit_seq
         FROM opinion_reports WHERE consultation_id = $1 ORDER BY version",
        &[&consultation.as_str()],
    )
    .await
    .map_err(postgres_error)?
    .iter()
    .map(|row| {
        OpinionRow {
            consultation_id: column(row, 0)?,
            version: column(row, 1)?,
            diagnosis_impression: column(row, 2)?,
            recommendations: column(row, 3)?,
            follow_up: column(row, 4)?,
            author_id: column(row, 5)?,
            supersedes_version: column(row, 6)?,
            created_at_us: column(row, 7)?,
            signed_at_us: column(row, 8)?,
            content_hash: column(row, 9)?,
            audit_seq: column(row, 10)?,
        }
        .into_opinion()
    })
    .collect()
}

/// Inserts the draft, or replaces the unsigned draft of the same version. A signed
/// version is left alone and reported as `Concurrent`; the check and the write are one
/// statement, so a version signed meanwhile is never overwritten.
pub async fn save_draft(client: &impl GenericClient, report: &OpinionReport) -> Result<()> {
    let written = query::execute(
        client,
        "INSERT INTO opinion_reports (consultation_id, version, diagnosis_impression,
             recommendations, follow_up, author_id, supersedes_version, created_at_us)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (consultation_id, version) DO UPDATE SET
             diagnosis_impression = EXCLUDED.diagnosis_impression,
             recommendations = EXCLUDED.recommendations, follow_up = EXCLUDED.follow_up,
             author_id = EXCLUDED.author_id, created_at_us = EXCLUDED.created_at_us
         WHERE opinion_reports.signed_at_us IS NULL",
        &[
            &report.consultation.as_str(),
            &i64::from(report.version),
            &report.content.diagnosis_impression.as_str(),
            &report.content.recommendations.as_str(),
            &report.content.follow_up.as_str(),
            &report.author.as_str(),
            &report.supersedes.map(i64::from),
            &micros(report.created_at),
        ],
    )
    .await
    .map_err(postgres_error)?;
    if written == 0 {
        return Err(signed_already(report));
    }
    Ok(())
}

/// The condition a draft must meet to be signed as `report`: unsigned, and saying
/// exactly what the signer read.
const SIGNABLE: &str = "consultation_id = $1 AND version = $2 AND signed_at_us IS NULL
    AND diagnosis_impression = $3 AND recommendations = $4 AND follow_up = $5";

/// Locks the draft about to be signed until the transaction ends; `Concurrent` if it
/// is missing, already signed or no longer says what `report` says.
pub async fn lock_for_signing(client: &impl GenericClient, report: &OpinionReport) -> Result<()> {
    let found = query::optional(
        client,
        &format!("SELECT 1 FROM opinion_reports WHERE {SIGNABLE} FOR UPDATE"),
        &[
            &report.consultation.as_str(),
            &i64::from(report.version),
            &report.content.diagnosis_impression.as_str(),
            &report.content.recommendations.as_str(),
            &report.content.follow_up.as_str(),
        ],
    )
    .await
    .map_err(postgres_error)?;
    match found {
        Some(_) => Ok(()),
        None => Err(signed_already(report)),
    }
}

/// Marks the draft signed, with its content hash and the audit record that carries it.
pub async fn seal(
    client: &impl GenericClient,
    report: &OpinionReport,
    signed_at: OffsetDateTime,
    content_hash: &str,
    audit_seq: u64,
) -> Result<()> {
    let sealed = query::execute(
        client,
        &format!(
            "UPDATE opinion_reports SET signed_at_us = $6, content_hash = $7, audit_seq = $8
             WHERE {SIGNABLE}"
        ),
        &[
            &report.consultation.as_str(),
            &i64::from(report.version),
            &report.content.diagnosis_impression.as_str(),
            &report.content.recommendations.as_str(),
            &report.content.follow_up.as_str(),
            &micros(signed_at),
            &content_hash,
            &(audit_seq as i64),
        ],
    )
    .await
    .map_err(postgres_error)?;
    if sealed == 0 {
        return Err(signed_already(report));
    }
    Ok(())
}
