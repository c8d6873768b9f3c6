//! Translating PostgreSQL and pool errors into [`StoreError`]s.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Translates an error of a statement whose constraint violations the caller did not
/// expect. As in the SQLite backend, any violated constraint is a conflict with stored
/// data; lock contention and lost connections are worth a retry.
pub fn postgres_error(error: tokio_postgres::Error) -> StoreError {
    let Some(code) = error.code() else {
        if error.is_closed()
            || error
                .source()
                .is_some_and(|cause| cause.is::<std::io::Error>())
        {
            tracing::warn!(%error, "postgres connection failed");
            return StoreError::Unavailable("the database connection failed".into());
        }
        return StoreError::internal(error);
    };
    if is_integrity_violation(code) {
        return StoreError::Conflict("the change contradicts stored data".into());
    }
    if [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
    ]
    .contains(code)
    {
        return StoreError::Unavailable("the database is busy".into());
    }
    if code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
    {
        tracing::warn!(%error, "postgres refused the connection");
        return StoreError::Unavailable("the database is not accepting connections".into());
    }
    StoreError::internal(error)
}

/// Like [`postgres_error`] for an insert whose unique violation means that the
/// `entity` named `id` is already stored.
pub fn insert_error(
    entity: &'static str,
    id: &(impl ToString + ?Sized),
) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    let id = id.to_string();
    move |error| {
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::already_exists(entity, id)
        } else {
            postgres_error(error)
        }
    }
}

pub fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => postgres_error(error),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        PoolError::Closed => StoreError::Unavailable("the database pool is closed".into()),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => StoreError::internal(error),
    }
}

/// Class 23: unique, foreign key, check, not-null and exclusion violations.
fn is_integrity_violation(code: &SqlState) -> bool {
    code.code().starts_with("23")
}
