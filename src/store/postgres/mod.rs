//! The PostgreSQL backend, for several broker nodes sharing one database: a pool of
//! connections, every change committed together with its audit record, and the audit
//! chain ordered across nodes by a lock on its head row.

mod accounts;
mod audit;
mod audit_support;
mod directory;
mod error;
mod migrate;
mod query;
mod scheduling;
mod specialists;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::NoTls;
use tracing::instrument;

use self::error::{pool_error, postgres_error};
use super::{AuditQuery, DirectorySeed, ImportSummary, Result, Store, StoreError};
use crate::audit::{AuditEntry, AuditRecord};
use crate::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, Specialist, SpecialistProfile,
    SpecialistQuery, User, UserQuery, UserUpdate,
};
use crate::domain::ids::{InstitutionId, UserId};

/// Connections per broker node. Writers queue on the audit head anyway, so more would
/// mostly wait.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection before reporting the database as
/// unavailable.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Used when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user@host:port/dbname?…`,
    /// without TLS) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(StoreError::internal)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(StoreError::internal)?;
        migrate::migrate(&pool).await?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Starts the transaction a change and its audit record are written in. Dropping it
/// without [`commit`] rolls it back.
async fn begin(client: &mut Client) -> Result<Transaction<'_>> {
    client.transaction().await.map_err(postgres_error)
}

async fn commit(transaction: Transaction<'_>) -> Result<()> {
    transaction.commit().await.map_err(postgres_error)
}

#[async_trait]
impl Store for PostgresStore {
    #[instrument(skip_all, fields(institution = %institution.id))]
    async fn create_institution(&self, institution: &Institution, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        directory::insert_institution(&transaction, institution).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    #[instrument(skip_all, fields(institution = %update.id))]
    async fn update_institution(
        &self,
        update: &InstitutionUpdate,
        audit: AuditEntry,
    ) -> Result<Institution> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let institution = directory::update_institution(&transaction, update)
            .await?
            .ok_or_else(|| StoreError::not_found("institution", &update.id))?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await?;
        Ok(institution)
    }

    async fn institution(&self, id: &InstitutionId) -> Result<Option<Institution>> {
        directory::load_institution(&self.client().await?, id).await
    }

    async fn institutions(&self, kind: Option<InstitutionKind>) -> Result<Vec<Institution>> {
        directory::institutions(&self.client().await?, kind).await
    }

    #[instrument(skip_all, fields(user = %user.id))]
    async fn create_user(&self, user: &User, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let institution = directory::require_institution(&transaction, &user.institution).await?;
        user.check_placement(institution.kind)
            .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
        directory::write_user(&transaction, user, false).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    #[instrument(skip_all, fields(user = %update.id))]
    async fn update_user(&self, update: &UserUpdate, audit: AuditEntry) -> Result<User> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let user = directory::update_user(&transaction, update)
            .await?
            .ok_or_else(|| StoreError::not_found("user", &update.id))?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await?;
        Ok(user)
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        directory::load_user(&self.client().await?, id).await
    }

    async fn users(&self, query: &UserQuery) -> Result<Vec<User>> {
        directory::users(&self.client().await?, query).await
    }

    #[instrument(skip_all, fields(user = %profile.user_id))]
    async fn set_specialist_profile(
        &self,
        profile: &SpecialistProfile,
        audit: AuditEntry,
    ) -> Result<Specialist> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let user = directory::lock_user(&transaction, &profile.user_id)
            .await?
            .ok_or_else(|| StoreError::not_found("user", &profile.user_id))?;
        Specialist::check_eligible(&user)
            .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
        specialists::write_profile(&transaction, profile).await?;
        audit::append(&transaction, audit).await?;
        let specialist = specialists::load_specialist(&transaction, &profile.user_id)
            .await?
            .ok_or_else(|| StoreError::not_found("specialist", &profile.user_id))?;
        commit(transaction).await?;
        Ok(specialist)
    }

    async fn specialist(&self, user: &UserId) -> Result<Option<Specialist>> {
        specialists::load_specialist(&self.client().await?, user).await
    }

    async fn search_specialists(&self, query: &SpecialistQuery) -> Result<Vec<Specialist>> {
        specialists::search(&self.client().await?, query).await
    }

    #[instrument(skip_all)]
    async fn import_directory(
        &self,
        seed: &DirectorySeed,
        audit: AuditEntry,
    ) -> Result<ImportSummary> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        for institution in &seed.institutions {
            let kind = directory::upsert_institution(&transaction, institution)
                .await?
                .kind;
            if kind != institution.kind {
                return Err(StoreError::Conflict(format!(
                    "institution {} is stored as {kind}, not {}",
                    institution.id, institution.kind
                )));
            }
        }
        for user in &seed.users {
            let institution =
                directory::require_institution(&transaction, &user.institution).await?;
            user.check_placement(institution.kind)
                .map_err(|problem| StoreError::Conflict(format!("user {}: {problem}", user.id)))?;
            directory::write_user(&transaction, user, true).await?;
        }
        for profile in &seed.specialists {
            let user = directory::lock_user(&transaction, &profile.user_id)
                .await?
                .ok_or_else(|| StoreError::not_found("user", &profile.user_id))?;
            Specialist::check_eligible(&user)
                .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
            specialists::write_profile(&transaction, profile).await?;
        }
        audit::append(&transaction, audit).await?;
        commit(transaction).await?;
        Ok(ImportSummary {
            institutions: seed.institutions.len(),
            users: seed.users.len(),
            specialists: seed.specialists.len(),
        })
    }

    #[instrument(skip_all, fields(action = %entry.action))]
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let record = audit::append(&transaction, entry).await?;
        commit(transaction).await?;
        Ok(record)
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        audit::select(&self.client().await?, query).await
    }

    async fn audit_records(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        audit::records(&self.client().await?, after, limit).await
    }
}
