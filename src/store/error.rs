use thiserror::Error;

/// What can go wrong in a store, in terms the API can answer with. Backend errors are
/// translated into these in each backend; constraint violations become `AlreadyExists`
/// or `Conflict`, never `Internal`.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{entity} {id} already exists")]
    AlreadyExists { entity: &'static str, id: String },
    /// The change contradicts what is stored (a missing institution, a wrong state).
    #[error("{0}")]
    Conflict(String),
    /// Someone else changed the record since it was read; reading it again and
    /// retrying may succeed.
    #[error("{entity} {id} was changed by someone else; read it again and retry")]
    Concurrent { entity: &'static str, id: String },
    /// The database cannot be reached or is shutting down; the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub fn already_exists(entity: &'static str, id: impl ToString) -> Self {
        StoreError::AlreadyExists {
            entity,
            id: id.to_string(),
        }
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Internal(Box::new(error))
    }

    /// Stored data that no longer parses as a domain value: a bug or tampering.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Internal(what.into().into())
    }
}
