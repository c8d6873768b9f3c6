//! Passwords, web sessions and enrollment tokens in PostgreSQL, with the same
//! behaviour as the SQLite backend.
//!
//! Several nodes may change one account at once: counts are incremented in SQL, and
//! an enrollment is locked before it is checked, so that of two concurrent uses the
//! second finds it used. As everywhere in this backend, the audit head is the last
//! lock a transaction takes.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tracing::instrument;

use super::error::{insert_error, postgres_error};
use super::query::{self, column};
use super::{PostgresStore, audit, begin, commit, directory};
use crate::audit::AuditEntry;
use crate::domain::ids::UserId;
use crate::store::rows;
use crate::store::{
    AccountStore, Credential, Enrollment, FailureOutcome, Result, StoreError, WebSession,
};

const CREDENTIAL_COLUMNS: &str =
    "user_id, password_hash, failed_attempts, locked_until_us, updated_at_us";
const SESSION_COLUMNS: &str = "id, user_id, created_at_us, expires_at_us, ended_at_us";
const ENROLLMENT_COLUMNS: &str = "token_hash, user_id, created_at_us, expires_at_us, used_at_us";

fn attempts(stored: i32) -> Result<u32> {
    u32::try_from(stored)
        .map_err(|_| StoreError::corrupt(format!("stored failed attempts {stored} are invalid")))
}

fn credential_row(row: &Row) -> Result<Credential> {
    Ok(Credential {
        user: rows::user_id(column(row, 0)?)?,
        password_hash: column(row, 1)?,
        failed_attempts: attempts(column(row, 2)?)?,
        locked_until: column(row, 3)?,
        updated_at: column(row, 4)?,
    })
}

fn session_row(row: &Row) -> Result<WebSession> {
    Ok(WebSession {
        id: column(row, 0)?,
        user: rows::user_id(column(row, 1)?)?,
        created_at: column(row, 2)?,
        expires_at: column(row, 3)?,
        ended_at: column(row, 4)?,
    })
}

fn enrollment_row(row: &Row) -> Result<Enrollment> {
    Ok(Enrollment {
        token_hash: column(row, 0)?,
        user: rows::user_id(column(row, 1)?)?,
        created_at: column(row, 2)?,
        expires_at: column(row, 3)?,
        used_at: column(row, 4)?,
    })
}

/// The user must exist; they are locked against change until the transaction ends.
async fn require_user(client: &impl GenericClient, user: &UserId) -> Result<()> {
    directory::lock_user(client, user)
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found("user", user))
}

/// Stores the password, clearing failures and any lockout, and ends the user's web
/// sessions: a new password signs every browser out.
async fn write_password(
    client: &impl GenericClient,
    user: &UserId,
    hash: &str,
    now: i64,
) -> Result<()> {
    query::execute(
        client,
        "INSERT INTO credentials (user_id, password_hash, failed_attempts, locked_until_us,
             updated_at_us)
         VALUES ($1, $2, 0, NULL, $3)
         ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash,
             failed_attempts = 0, locked_until_us = NULL,
             updated_at_us = EXCLUDED.updated_at_us",
        &[&user.as_str(), &hash, &now],
    )
    .await
    .map_err(postgres_error)?;
    query::execute(
        client,
        "UPDATE web_sessions SET ended_at_us = $2 WHERE user_id = $1 AND ended_at_us IS NULL",
        &[&user.as_str(), &now],
    )
    .await
    .map_err(postgres_error)?;
    Ok(())
}

async fn insert_session(client: &impl GenericClient, session: &WebSession) -> Result<()> {
    query::execute(
        client,
        &format!("INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
        &[
            &session.id,
            &session.user.as_str(),
            &session.created_at,
            &session.expires_at,
            &session.ended_at,
        ],
    )
    .await
    .map_err(insert_error("web session", &session.id))?;
    Ok(())
}

#[async_trait]
impl AccountStore for PostgresStore {
    async fn credential(&self, user: &UserId) -> Result<Option<Credential>> {
        query::optional(
            &self.client().await?,
            &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1"),
            &[&user.as_str()],
        )
        .await
        .map_err(postgres_error)?
        .map(|row| credential_row(&row))
        .transpose()
    }

    #[instrument(skip_all, fields(user = %user))]
    async fn set_password(
        &self,
        user: &UserId,
        password_hash: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        require_user(&transaction, user).await?;
        write_password(&transaction, user, password_hash, now).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    #[instrument(skip_all, fields(user = %user))]
    async fn record_failed_sign_in(
        &self,
        user: &UserId,
        now: i64,
        limit: u32,
        lock_micros: i64,
        audit: AuditEntry,
    ) -> Result<FailureOutcome> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        // Counted in SQL, on the row it locks: concurrent failures each see the count
        // the previous one left. A lock that has expired is dropped.
        let counted = query::optional(
            &transaction,
            "UPDATE credentials SET
                 failed_attempts = CASE WHEN failed_attempts + 1 >= $3::BIGINT THEN 0
                     ELSE failed_attempts + 1 END,
                 locked_until_us = CASE WHEN failed_attempts + 1 >= $3::BIGINT THEN $4::BIGINT
                     WHEN locked_until_us > $2::BIGINT THEN locked_until_us END,
                 updated_at_us = $2::BIGINT
             WHERE user_id = $1
             RETURNING failed_attempts, locked_until_us",
            &[
                &user.as_str(),
                &now,
                &i64::from(limit),
                &now.saturating_add(lock_micros),
            ],
        )
        .await
        .map_err(postgres_error)?
        .ok_or_else(|| StoreError::not_found("credential", user))?;
        let failed_attempts = attempts(column(&counted, 0)?)?;
        let locked_until: Option<i64> = column(&counted, 1)?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await?;
        Ok(FailureOutcome {
            failed_attempts,
            locked_until: locked_until.filter(|until| *until > now),
        })
    }

    #[instrument(skip_all, fields(user = %session.user))]
    async fn start_web_session(&self, session: &WebSession, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        require_user(&transaction, &session.user).await?;
        insert_session(&transaction, session).await?;
        query::execute(
            &transaction,
            "UPDATE credentials SET failed_attempts = 0,
                 locked_until_us = CASE WHEN locked_until_us > $2::BIGINT
                     THEN locked_until_us END,
                 updated_at_us = $2::BIGINT
             WHERE user_id = $1
               AND (failed_attempts <> 0 OR locked_until_us <= $2::BIGINT)",
            &[&session.user.as_str(), &session.created_at],
        )
        .await
        .map_err(postgres_error)?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    async fn web_session(&self, id: &str) -> Result<Option<WebSession>> {
        query::optional(
            &self.client().await?,
            &format!("SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(postgres_error)?
        .map(|row| session_row(&row))
        .transpose()
    }

    #[instrument(skip_all)]
    async fn end_web_session(&self, id: &str, now: i64, audit: AuditEntry) -> Result<bool> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        let ended = query::execute(
            &transaction,
            "UPDATE web_sessions SET ended_at_us = $2 WHERE id = $1 AND ended_at_us IS NULL",
            &[&id, &now],
        )
        .await
        .map_err(postgres_error)?
            > 0;
        if ended {
            audit::append(&transaction, audit).await?;
        }
        commit(transaction).await?;
        Ok(ended)
    }

    #[instrument(skip_all, fields(user = %enrollment.user))]
    async fn create_enrollment(&self, enrollment: &Enrollment, audit: AuditEntry) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        require_user(&transaction, &enrollment.user).await?;
        query::execute(
            &transaction,
            &format!("INSERT INTO enrollments ({ENROLLMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
            &[
                &enrollment.token_hash,
                &enrollment.user.as_str(),
                &enrollment.created_at,
                &enrollment.expires_at,
                &enrollment.used_at,
            ],
        )
        .await
        .map_err(insert_error("enrollment", &enrollment.token_hash))?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }

    async fn enrollment(&self, token_hash: &str) -> Result<Option<Enrollment>> {
        query::optional(
            &self.client().await?,
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE token_hash = $1"),
            &[&token_hash],
        )
        .await
        .map_err(postgres_error)?
        .map(|row| enrollment_row(&row))
        .transpose()
    }

    #[instrument(skip_all, fields(user = %session.user))]
    async fn enroll(
        &self,
        token_hash: &str,
        password_hash: &str,
        session: &WebSession,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client).await?;
        // Locked before it is checked: a concurrent enrollment with the same token
        // waits here, then reads the row as this one left it (used).
        let enrollment = query::optional(
            &transaction,
            &format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE token_hash = $1 FOR UPDATE"
            ),
            &[&token_hash],
        )
        .await
        .map_err(postgres_error)?
        .map(|row| enrollment_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("enrollment", token_hash))?;
        enrollment.usable_for(session)?;
        let now = session.created_at;
        write_password(&transaction, &session.user, password_hash, now).await?;
        query::execute(
            &transaction,
            "UPDATE enrollments SET used_at_us = $2 WHERE token_hash = $1",
            &[&token_hash, &now],
        )
        .await
        .map_err(postgres_error)?;
        insert_session(&transaction, session).await?;
        audit::append(&transaction, audit).await?;
        commit(transaction).await
    }
}
