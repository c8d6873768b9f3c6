//! Scheduling on PostgreSQL: availability, consultations with their slot claims, and
//! opinion reports, with the same behaviour as the SQLite backend.
//!
//! Every change is written with its audit record in one transaction. The audit head is
//! always the last lock a transaction takes (it is held until commit and every writer
//! needs it), so that writers waiting for rows never wait in a circle; for the same
//! reason signing an opinion locks the draft and writes the consultation before it
//! appends its audit record, although the record's seq is written into the draft.

mod availability;
mod consultations;
mod opinions;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::instrument;

use super::{PostgresStore, audit, begin, commit};
use crate::audit::AuditEntry;
use crate::domain::consultation::{Consultation, ConsultationId};
use crate::domain::ids::UserId;
use crate::domain::opinion::OpinionReport;
use crate::domain::policy::ConsultationScope;
use crate::domain::schedule::{Availability, Window};
use crate::store::{
    ConsultationFilter, Result, SchedulingStore, SignedOpinion, StoreError, StoredOpinion,
};

#[async_trait]
impl SchedulingStore for PostgresStore {
    #[instrument(skip_all, fields(doctor = %availability.doctor))]
    async fn set_availability(&self, availability: &Availability, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        availability::write(&transaction, availability, audit.at).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    async fn availability(&self, doctor: &UserId) -> Result<Option<Availability>> {
        availability::load(&self.client().await?, doctor).await
    }

    async fn claimed_quanta(
        &self,
        doctors: &[UserId],
        range: &Window,
    ) -> Result<Vec<(UserId, OffsetDateTime)>> {
        availability::claimed_quanta(&self.client().await?, doctors, range).await
    }

    #[instrument(skip_all, fields(consultation_id = %consultation.id))]
    async fn create_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        consultations::insert(&transaction, consultation).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    #[instrument(skip_all, fields(consultation_id = %consultation.id))]
    async fn update_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        consultations::write_change(&transaction, consultation).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    async fn consultation(&self, id: &ConsultationId) -> Result<Option<Consultation>> {
        consultations::load(&self.client().await?, id).await
    }

    async fn consultations(
        &self,
        scope: &ConsultationScope,
        filter: &ConsultationFilter,
    ) -> Result<Vec<Consultation>> {
        consultations::list(&self.client().await?, scope, filter).await
    }

    async fn unanswered_urgent(
        &self,
        requested_before: OffsetDateTime,
    ) -> Result<Vec<Consultation>> {
        consultations::unanswered_urgent(&self.client().await?, requested_before).await
    }

    async fn missed(&self, ended_before: OffsetDateTime) -> Result<Vec<Consultation>> {
        consultations::missed(&self.client().await?, ended_before).await
    }

    async fn opinions(&self, consultation: &ConsultationId) -> Result<Vec<StoredOpinion>> {
        opinions::load(&self.client().await?, consultation).await
    }

    #[instrument(skip_all, fields(consultation_id = %report.consultation))]
    async fn save_opinion_draft(&self, report: &OpinionReport, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        opinions::save_draft(&transaction, report).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    #[instrument(skip_all, fields(consultation_id = %report.consultation))]
    async fn sign_opinion(
        &self,
        report: &OpinionReport,
        content_hash: &str,
        consultation: Option<&Consultation>,
        audit: AuditEntry,
    ) -> Result<SignedOpinion> {
        let signed_at = report.signed_at.ok_or_else(|| {
            StoreError::Conflict("the report to store as signed has no signing time".into())
        })?;
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        // Only an unsigned draft with exactly this content may be signed; it stays so
        // until this transaction ends.
        opinions::lock_for_signing(&transaction, report).await?;
        if let Some(consultation) = consultation {
            consultations::write_change(&transaction, consultation).await?;
        }
        let record = audit::append(&transaction, audit).await?;
        opinions::seal(&transaction, report, signed_at, content_hash, record.seq).await?;
        commit(transaction).await?;
        Ok(SignedOpinion {
            report: report.clone(),
            content_hash: content_hash.to_owned(),
            audit_seq: record.seq,
        })
    }
}
