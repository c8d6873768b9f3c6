//! Persistence: one interface ([`Store`]) with two backends, SQLite (embedded, the
//! default) and PostgreSQL (several broker nodes on one database).
//!
//! Every change is written together with its audit record in one transaction: a
//! method that changes state takes the [`AuditEntry`] describing the change, and either
//! both are committed or neither is.

mod accounts;
mod audit_support;
mod error;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditRecord, VerifyReport};
use crate::domain::consultation::{Consultation, ConsultationId, ConsultationState};
use crate::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, PageSize, Specialist, SpecialistProfile,
    SpecialistQuery, User, UserQuery, UserUpdate,
};
use crate::domain::ids::{InstitutionId, UserId};
use crate::domain::opinion::OpinionReport;
use crate::domain::policy::ConsultationScope;
use crate::domain::schedule::{Availability, Window};

pub use accounts::{AccountStore, Credential, Enrollment, FailureOutcome, WebSession};
pub use audit_support::{AuditSupportStore, check_latest_checkpoint, write_checkpoint};
pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What `import_directory` changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub institutions: usize,
    pub users: usize,
    pub specialists: usize,
}

/// A whole directory to load at once (see `directory import`).
#[derive(Debug, Clone, Default)]
pub struct DirectorySeed {
    pub institutions: Vec<Institution>,
    pub users: Vec<User>,
    pub specialists: Vec<SpecialistProfile>,
}

/// Which consultations a listing returns, within the caller's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsultationFilter {
    /// Any of these states; empty means all.
    pub states: Vec<ConsultationState>,
    /// Consultations whose window starts in this range (pending urgent requests,
    /// which have no window yet, are included whatever the range).
    pub starting: Option<Window>,
    /// Continue after this position (the page token): `(sort key in µs, id)`.
    pub after: Option<(i64, ConsultationId)>,
    pub limit: PageSize,
}

/// A selection of audit records. Every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Records at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Records before this time.
    pub to: Option<OffsetDateTime>,
    /// Records whose actor or target belongs to this institution, including records
    /// about consultations it invites or gives.
    pub institution: Option<String>,
    pub user: Option<String>,
    pub role: Option<String>,
    /// An exact target, e.g. `consultation:c-…`.
    pub target: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<crate::audit::Outcome>,
    /// Newest first (descending seq) instead of oldest first.
    pub newest_first: bool,
    /// Continue after this record (in the query's order): the page token.
    pub after_seq: Option<u64>,
    pub limit: PageSize,
}

/// A signed opinion with the audit record that carries its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOpinion {
    pub report: OpinionReport,
    pub content_hash: String,
    pub audit_seq: u64,
}

/// A version of an opinion as stored: a draft, or signed with its seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOpinion {
    pub report: OpinionReport,
    /// Set once signed.
    pub seal: Option<(String, u64)>,
}

/// The key a consultation sorts by in listings: its start, or when it was requested
/// if it has no window yet.
pub fn consultation_sort_key(consultation: &Consultation) -> i64 {
    rows::micros(
        consultation
            .window
            .map(|window| window.start())
            .unwrap_or(consultation.created_at),
    )
}

/// The store: one interface, in parts by area, implemented by each backend.
#[async_trait]
pub trait Store:
    SchedulingStore + AuditSupportStore + AccountStore + Send + Sync + 'static
{
    // Directory: institutions.
    async fn create_institution(&self, institution: &Institution, audit: AuditEntry) -> Result<()>;
    async fn update_institution(
        &self,
        update: &InstitutionUpdate,
        audit: AuditEntry,
    ) -> Result<Institution>;
    async fn institution(&self, id: &InstitutionId) -> Result<Option<Institution>>;
    async fn institutions(&self, kind: Option<InstitutionKind>) -> Result<Vec<Institution>>;

    // Directory: users.
    async fn create_user(&self, user: &User, audit: AuditEntry) -> Result<()>;
    async fn update_user(&self, update: &UserUpdate, audit: AuditEntry) -> Result<User>;
    async fn user(&self, id: &UserId) -> Result<Option<User>>;
    async fn users(&self, query: &UserQuery) -> Result<Vec<User>>;

    // Directory: specialists.
    async fn set_specialist_profile(
        &self,
        profile: &SpecialistProfile,
        audit: AuditEntry,
    ) -> Result<Specialist>;
    async fn specialist(&self, user: &UserId) -> Result<Option<Specialist>>;
    /// Active specialists matching the query, ordered by user id.
    async fn search_specialists(&self, query: &SpecialistQuery) -> Result<Vec<Specialist>>;

    /// Inserts or updates every institution, user and profile of `seed` in one
    /// transaction, with one audit record for the import.
    async fn import_directory(
        &self,
        seed: &DirectorySeed,
        audit: AuditEntry,
    ) -> Result<ImportSummary>;

    /// One audit record by its sequence number.
    async fn audit_record(&self, seq: u64) -> Result<Option<AuditRecord>> {
        Ok(self
            .audit_records(seq.saturating_sub(1), 1)
            .await?
            .into_iter()
            .find(|record| record.seq == seq))
    }

    // Audit log.
    /// Appends a record that accompanies no change, such as a refused call.
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord>;
    /// The records `query` selects, in its order.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Up to `limit` records with `seq > after`, in chain order.
    async fn audit_records(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>>;
    /// Recomputes the whole chain.
    async fn verify_audit(&self) -> Result<VerifyReport> {
        let mut verifier = crate::audit::ChainVerifier::from_start();
        let mut after = 0;
        loop {
            let page = self.audit_records(after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                if !verifier.check(record) {
                    return Ok(verifier.finish());
                }
            }
        }
        Ok(verifier.finish())
    }
}

/// Availability, consultations and opinions.
#[async_trait]
pub trait SchedulingStore: Send + Sync + 'static {
    // Scheduling: availability.
    /// Replaces the doctor's availability.
    async fn set_availability(&self, availability: &Availability, audit: AuditEntry) -> Result<()>;
    async fn availability(&self, doctor: &UserId) -> Result<Option<Availability>>;
    /// The start of every claimed quantum of these doctors' time within `range`.
    async fn claimed_quanta(
        &self,
        doctors: &[UserId],
        range: &Window,
    ) -> Result<Vec<(UserId, OffsetDateTime)>>;

    // Scheduling: consultations.
    /// Inserts a new consultation and claims its slot. A slot (any quantum of it)
    /// already claimed is `AlreadyExists`: no double booking, under any concurrency.
    async fn create_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()>;
    /// Stores `consultation`, which must be the stored version's successor
    /// (`version` one higher), else `Concurrent`. Its slot claim follows it: released
    /// when it no longer holds one, moved when its window moved (a taken slot is
    /// `AlreadyExists`).
    async fn update_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()>;
    async fn consultation(&self, id: &ConsultationId) -> Result<Option<Consultation>>;
    /// Consultations in `scope` that pass `filter`, by start (or request time), then id.
    async fn consultations(
        &self,
        scope: &ConsultationScope,
        filter: &ConsultationFilter,
    ) -> Result<Vec<Consultation>>;
    /// Urgent requests still unanswered that were made before `requested_before`.
    async fn unanswered_urgent(
        &self,
        requested_before: OffsetDateTime,
    ) -> Result<Vec<Consultation>>;
    /// Scheduled consultations whose window ended before `ended_before`.
    async fn missed(&self, ended_before: OffsetDateTime) -> Result<Vec<Consultation>>;

    // Opinion reports.
    /// Every version, oldest first.
    async fn opinions(&self, consultation: &ConsultationId) -> Result<Vec<StoredOpinion>>;
    /// Inserts a draft, or replaces the unsigned draft of the same version.
    async fn save_opinion_draft(&self, report: &OpinionReport, audit: AuditEntry) -> Result<()>;
    /// Marks the draft signed with its content hash, and stores the consultation's
    /// next version if given, together with `audit` (whose details must carry the hash).
    async fn sign_opinion(
        &self,
        report: &OpinionReport,
        content_hash: &str,
        consultation: Option<&Consultation>,
        audit: AuditEntry,
    ) -> Result<SignedOpinion>;
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the store a database URL names: `sqlite://PATH` (or a bare path) or
/// `postgres://…`. Runs pending migrations.
/// Like [`open`], but an SQLite file that does not exist yet is an error rather than
/// a new, empty database: for tools that inspect an existing deployment.
pub async fn open_existing(url: &str) -> Result<SharedStore> {
    if let Some(path) = sqlite_path(url)
        && !std::path::Path::new(path).exists()
    {
        return Err(StoreError::not_found("database file", path));
    }
    open(url).await
}

fn sqlite_path(url: &str) -> Option<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        None
    } else {
        Some(url.strip_prefix("sqlite://").unwrap_or(url))
    }
}

pub async fn open(url: &str) -> Result<SharedStore> {
    match sqlite_path(url) {
        None => Ok(Arc::new(postgres::PostgresStore::connect(url).await?)),
        Some(path) => Ok(Arc::new(sqlite::SqliteStore::open(path).await?)),
    }
}
