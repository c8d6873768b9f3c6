//! Passwords, web sessions and enrollment tokens for the web console's sign-in.
//!
//! Times are microseconds since the Unix epoch, like the audit log's. Every change is
//! committed together with its audit record.

use async_trait::async_trait;

use super::{Result, StoreError};
use crate::audit::AuditEntry;
use crate::domain::ids::UserId;

/// A user's password and the state of their lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: UserId,
    /// An argon2id hash in PHC string format.
    pub password_hash: String,
    /// Failed sign-ins since the last success or password change.
    pub failed_attempts: u32,
    /// Sign-in is refused until then.
    pub locked_until: Option<i64>,
    pub updated_at: i64,
}

/// A browser's signed-in session. The cookie carries `id` with a signature; the row
/// says whether it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// 32 lowercase hex digits (128 random bits).
    pub id: String,
    pub user: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

/// A one-time token with which a user sets their own password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// SHA-256 of the token, lowercase hex: the token itself is never stored.
    pub token_hash: String,
    pub user: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl Enrollment {
    /// Whether this enrollment may start `session`: unused, unexpired when the session
    /// starts, and for the session's user.
    pub fn usable_for(&self, session: &WebSession) -> Result<()> {
        if self.used_at.is_some() {
            return Err(StoreError::Conflict(
                "the enrollment has already been used".into(),
            ));
        }
        if self.expires_at <= session.created_at {
            return Err(StoreError::Conflict("the enrollment has expired".into()));
        }
        if self.user != session.user {
            return Err(StoreError::Conflict(format!(
                "the enrollment is not for user {}",
                session.user
            )));
        }
        Ok(())
    }
}

/// What a failed sign-in did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    pub failed_attempts: u32,
    /// Set when this failure (or an earlier one) locked the account.
    pub locked_until: Option<i64>,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn credential(&self, user: &UserId) -> Result<Option<Credential>>;
    /// Sets (or replaces) the user's password; clears failures and any lockout, and
    /// ends the user's web sessions at `now` (a new password signs every browser out).
    /// The user must exist (`NotFound` otherwise).
    async fn set_password(
        &self,
        user: &UserId,
        password_hash: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<()>;
    /// Counts a failed sign-in for a user who has a credential. When the count reaches
    /// `limit`, the account is locked until `now + lock_micros` and the count restarts
    /// at 0. `NotFound` if the user has no credential.
    async fn record_failed_sign_in(
        &self,
        user: &UserId,
        now: i64,
        limit: u32,
        lock_micros: i64,
        audit: AuditEntry,
    ) -> Result<FailureOutcome>;
    /// A successful sign-in: clears the user's failures and stores the session.
    async fn start_web_session(&self, session: &WebSession, audit: AuditEntry) -> Result<()>;
    async fn web_session(&self, id: &str) -> Result<Option<WebSession>>;
    /// Marks the session ended at `now`; false if it did not exist or had already ended.
    async fn end_web_session(&self, id: &str, now: i64, audit: AuditEntry) -> Result<bool>;
    async fn create_enrollment(&self, enrollment: &Enrollment, audit: AuditEntry) -> Result<()>;
    async fn enrollment(&self, token_hash: &str) -> Result<Option<Enrollment>>;
    /// Uses the enrollment: only if it is unused, unexpired at `now` and for
    /// `session.user`; sets the password (clearing failures and lockout, ending the
    /// user's other sessions), marks the enrollment used and starts `session`, all in
    /// one transaction with `audit`.
    /// `Conflict` if the token has been used or has expired (e.g. by a concurrent
    /// enrollment) or names another user, `NotFound` if there is no such token.
    async fn enroll(
        &self,
        token_hash: &str,
        password_hash: &str,
        session: &WebSession,
        audit: AuditEntry,
    ) -> Result<()>;
}
