//! Passwords, web sessions and enrollment tokens in SQLite.
//!
//! Every change runs on the writer thread, which runs one job at a time: a check and
//! the change that depends on it cannot be interleaved with another writer's.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tracing::instrument;

use super::{SqliteStore, append_audit, is_unique_violation, load_user, sqlite_error};
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

fn attempts(stored: i64) -> Result<u32> {
    u32::try_from(stored)
        .map_err(|_| StoreError::corrupt(format!("stored failed attempts {stored} are invalid")))
}

fn credential_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Credential>> {
    let user: String = row.get(0)?;
    let password_hash: String = row.get(1)?;
    let failed_attempts: i64 = row.get(2)?;
    let locked_until: Option<i64> = row.get(3)?;
    let updated_at: i64 = row.get(4)?;
    Ok((|| {
        Ok(Credential {
            user: rows::user_id(&user)?,
            password_hash,
            failed_attempts: attempts(failed_attempts)?,
            locked_until,
            updated_at,
        })
    })())
}

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<WebSession>> {
    let id: String = row.get(0)?;
    let user: String = row.get(1)?;
    let created_at: i64 = row.get(2)?;
    let expires_at: i64 = row.get(3)?;
    let ended_at: Option<i64> = row.get(4)?;
    Ok(rows::user_id(&user).map(|user| WebSession {
        id,
        user,
        created_at,
        expires_at,
        ended_at,
    }))
}

fn enrollment_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Enrollment>> {
    let token_hash: String = row.get(0)?;
    let user: String = row.get(1)?;
    let created_at: i64 = row.get(2)?;
    let expires_at: i64 = row.get(3)?;
    let used_at: Option<i64> = row.get(4)?;
    Ok(rows::user_id(&user).map(|user| Enrollment {
        token_hash,
        user,
        created_at,
        expires_at,
        used_at,
    }))
}

fn load_enrollment(connection: &Connection, token_hash: &str) -> Result<Option<Enrollment>> {
    connection
        .query_row(
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE token_hash = ?1"),
            [token_hash],
            enrollment_row,
        )
        .optional()
        .map_err(sqlite_error)?
        .transpose()
}

fn require_user(connection: &Connection, user: &UserId) -> Result<()> {
    load_user(connection, user)?
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found("user", user))
}

/// Stores the password, clearing failures and any lockout.
fn write_password(connection: &Connection, user: &UserId, hash: &str, now: i64) -> Result<()> {
    connection
        .execute(
            "INSERT INTO credentials (user_id, password_hash, failed_attempts, locked_until_us,
                 updated_at_us)
             VALUES (?1, ?2, 0, NULL, ?3)
             ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,
                 failed_attempts = 0, locked_until_us = NULL,
                 updated_at_us = excluded.updated_at_us",
            params![user.as_str(), hash, now],
        )
        .map_err(sqlite_error)?;
    // A new password signs every browser out.
    connection
        .execute(
            "UPDATE web_sessions SET ended_at_us = ?2 WHERE user_id = ?1 AND ended_at_us IS NULL",
            params![user.as_str(), now],
        )
        .map_err(sqlite_error)?;
    Ok(())
}

fn insert_session(connection: &Connection, session: &WebSession) -> Result<()> {
    connection
        .execute(
            &format!("INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                session.id,
                session.user.as_str(),
                session.created_at,
                session.expires_at,
                session.ended_at
            ],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists("web session", &session.id)
            } else {
                sqlite_error(error)
            }
        })?;
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn credential(&self, user: &UserId) -> Result<Option<Credential>> {
        let user = user.clone();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = ?1"),
                    [user.as_str()],
                    credential_row,
                )
                .optional()
                .map_err(sqlite_error)?
                .transpose()
        })
        .await
    }

    #[instrument(skip_all, fields(user = %user))]
    async fn set_password(
        &self,
        user: &UserId,
        password_hash: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<()> {
        let user = user.clone();
        let password_hash = password_hash.to_owned();
        self.writer
            .write(move |connection| {
                require_user(connection, &user)?;
                write_password(connection, &user, &password_hash, now)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
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
        let user = user.clone();
        let lock_until = now.saturating_add(lock_micros);
        self.writer
            .write(move |connection| {
                // Counted in SQL, from the stored count: the count is right however
                // the calls interleave. A lock that has expired is dropped.
                let counted: Option<(i64, Option<i64>)> = connection
                    .query_row(
                        "UPDATE credentials SET
                             failed_attempts = CASE WHEN failed_attempts + 1 >= ?3 THEN 0
                                 ELSE failed_attempts + 1 END,
                             locked_until_us = CASE WHEN failed_attempts + 1 >= ?3 THEN ?4
                                 WHEN locked_until_us > ?2 THEN locked_until_us END,
                             updated_at_us = ?2
                         WHERE user_id = ?1
                         RETURNING failed_attempts, locked_until_us",
                        params![user.as_str(), now, limit, lock_until],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .map_err(sqlite_error)?;
                let (failed_attempts, locked_until) =
                    counted.ok_or_else(|| StoreError::not_found("credential", &user))?;
                append_audit(connection, audit)?;
                Ok(FailureOutcome {
                    failed_attempts: attempts(failed_attempts)?,
                    locked_until: locked_until.filter(|until| *until > now),
                })
            })
            .await
    }

    #[instrument(skip_all, fields(user = %session.user))]
    async fn start_web_session(&self, session: &WebSession, audit: AuditEntry) -> Result<()> {
        let session = session.clone();
        self.writer
            .write(move |connection| {
                require_user(connection, &session.user)?;
                insert_session(connection, &session)?;
                let now = session.created_at;
                connection
                    .execute(
                        "UPDATE credentials SET failed_attempts = 0,
                             locked_until_us = CASE WHEN locked_until_us > ?2
                                 THEN locked_until_us END,
                             updated_at_us = ?2
                         WHERE user_id = ?1
                           AND (failed_attempts <> 0 OR locked_until_us <= ?2)",
                        params![session.user.as_str(), now],
                    )
                    .map_err(sqlite_error)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    async fn web_session(&self, id: &str) -> Result<Option<WebSession>> {
        let id = id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id = ?1"),
                    [id],
                    session_row,
                )
                .optional()
                .map_err(sqlite_error)?
                .transpose()
        })
        .await
    }

    #[instrument(skip_all)]
    async fn end_web_session(&self, id: &str, now: i64, audit: AuditEntry) -> Result<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                let ended = connection
                    .execute(
                        "UPDATE web_sessions SET ended_at_us = ?2
                         WHERE id = ?1 AND ended_at_us IS NULL",
                        params![id, now],
                    )
                    .map_err(sqlite_error)?
                    > 0;
                if ended {
                    append_audit(connection, audit)?;
                }
                Ok(ended)
            })
            .await
    }

    #[instrument(skip_all, fields(user = %enrollment.user))]
    async fn create_enrollment(&self, enrollment: &Enrollment, audit: AuditEntry) -> Result<()> {
        let enrollment = enrollment.clone();
        self.writer
            .write(move |connection| {
                require_user(connection, &enrollment.user)?;
                connection
                    .execute(
                        &format!(
                            "INSERT INTO enrollments ({ENROLLMENT_COLUMNS})
                             VALUES (?1, ?2, ?3, ?4, ?5)"
                        ),
                        params![
                            enrollment.token_hash,
                            enrollment.user.as_str(),
                            enrollment.created_at,
                            enrollment.expires_at,
                            enrollment.used_at
                        ],
                    )
                    .map_err(|error| {
                        if is_unique_violation(&error) {
                            StoreError::already_exists("enrollment", &enrollment.token_hash)
                        } else {
                            sqlite_error(error)
                        }
                    })?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    async fn enrollment(&self, token_hash: &str) -> Result<Option<Enrollment>> {
        let token_hash = token_hash.to_owned();
        self.read(move |connection| load_enrollment(connection, &token_hash))
            .await
    }

    #[instrument(skip_all, fields(user = %session.user))]
    async fn enroll(
        &self,
        token_hash: &str,
        password_hash: &str,
        session: &WebSession,
        audit: AuditEntry,
    ) -> Result<()> {
        let token_hash = token_hash.to_owned();
        let password_hash = password_hash.to_owned();
        let session = session.clone();
        self.writer
            .write(move |connection| {
                let now = session.created_at;
                let enrollment = load_enrollment(connection, &token_hash)?
                    .ok_or_else(|| StoreError::not_found("enrollment", &token_hash))?;
                enrollment.usable_for(&session)?;
                write_password(connection, &session.user, &password_hash, now)?;
                connection
                    .execute(
                        "UPDATE enrollments SET used_at_us = ?2
                         WHERE token_hash = ?1 AND used_at_us IS NULL",
                        params![token_hash, now],
                    )
                    .map_err(sqlite_error)?;
                insert_session(connection, &session)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }
}
