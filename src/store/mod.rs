//! Persistence: one interface ([`Store`]) with two backends, SQLite (embedded, the
//! default) and PostgreSQL (several broker nodes on one database).
//!
//! Every change is written together with its audit record in one transaction: a
//! method that changes state takes the [`AuditEntry`] describing the change, and either
//! both are committed or neither is.

mod error;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::{AuditEntry, AuditRecord, VerifyReport};
use crate::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, Specialist, SpecialistProfile,
    SpecialistQuery, User, UserQuery, UserUpdate,
};
use crate::domain::ids::{InstitutionId, UserId};

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    // Audit log.
    /// Appends a record that accompanies no change, such as a refused call.
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord>;
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

pub type SharedStore = Arc<dyn Store>;

/// Opens the store a database URL names: `sqlite://PATH` (or a bare path) or
/// `postgres://…`. Runs pending migrations.
pub async fn open(url: &str) -> Result<SharedStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    }
}
