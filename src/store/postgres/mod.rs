//! PostgreSQL backend (being written).
use super::{Result, StoreError};

pub struct PostgresStore;

impl PostgresStore {
    pub async fn connect(_url: &str) -> Result<Self> {
        Err(StoreError::Unavailable(
            "postgres backend not yet built".into(),
        ))
    }
}
