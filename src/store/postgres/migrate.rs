//! Schema migrations. Several broker nodes may start at once against one database, so
//! each migration is applied in a transaction that first takes an advisory lock: the
//! nodes apply it one after the other, and all but the first find it already applied.

use deadpool_postgres::Pool;

use super::error::{pool_error, postgres_error};
use crate::store::{Result, rows};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/postgres/0001_directory_and_audit.sql"),
    ),
    (
        2,
        include_str!("../migrations/postgres/0002_scheduling.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_audit_queries.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_audit_checkpoints_and_forwarding.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_accounts.sql")),
];

/// The advisory lock key that serialises migrations: "tc-migra" in ASCII.
const MIGRATION_LOCK: i64 = 0x7463_2d6d_6967_7261;

pub async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    for (version, sql) in MIGRATIONS {
        let transaction = client.transaction().await.map_err(postgres_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(postgres_error)?;
        // Created under the lock too: two nodes racing through `IF NOT EXISTS` can
        // both find the table missing.
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version        BIGINT PRIMARY KEY,
                     applied_at_us  BIGINT NOT NULL
                 )",
            )
            .await
            .map_err(postgres_error)?;
        let applied: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[version],
            )
            .await
            .map_err(postgres_error)?
            .try_get(0)
            .map_err(postgres_error)?;
        if !applied {
            tracing::info!(version, "applying postgres migration");
            transaction
                .batch_execute(sql)
                .await
                .map_err(postgres_error)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, applied_at_us) VALUES ($1, $2)",
                    &[version, &rows::micros(crate::audit::now_micros())],
                )
                .await
                .map_err(postgres_error)?;
        }
        transaction.commit().await.map_err(postgres_error)?;
    }
    Ok(())
}
