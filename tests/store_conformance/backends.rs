//! The backends the suite runs against, each with a fresh database per test and a way
//! to reach that database behind the store's back, through its own client library.

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;

use teleconsult::store::{self, SharedStore};
use tempfile::TempDir;
use tokio::sync::OnceCell;

/// A fresh database of one backend, and the store under test opened on it.
pub trait Backend: Sized {
    /// Creates an empty database; `None` when this backend is not available here (the
    /// test is then skipped).
    async fn start() -> Option<Self>;

    /// What `teleconsult::store::open` takes to open the database.
    fn url(&self) -> &str;

    /// Where [`Backend::store`] keeps the store once opened.
    fn opened(&self) -> &OnceCell<SharedStore>;

    /// The store under test, opened (and the database migrated) on first use.
    async fn store(&self) -> &SharedStore {
        self.opened()
            .get_or_init(|| async {
                store::open(self.url())
                    .await
                    .expect("opening the store under test")
            })
            .await
    }

    /// Runs SQL through a plain connection of the database's own client library.
    async fn execute_raw(&self, sql: &str) -> Result<(), String>;

    /// Removes the database's protection of `audit_log`, as someone with direct access
    /// to the database could.
    async fn lift_audit_protection(&self);

    /// Cleans up after a test that passed.
    async fn finish(self);
}

pub struct Sqlite {
    // Declared first so that the store closes before its directory is deleted.
    store: OnceCell<SharedStore>,
    path: PathBuf,
    _directory: TempDir,
}

impl Backend for Sqlite {
    async fn start() -> Option<Self> {
        let directory = tempfile::tempdir().expect("creating a temporary directory");
        Some(Self {
            store: OnceCell::new(),
            path: directory.path().join("teleconsult.db"),
            _directory: directory,
        })
    }

    fn opened(&self) -> &OnceCell<SharedStore> {
        &self.store
    }

    fn url(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }

    async fn execute_raw(&self, sql: &str) -> Result<(), String> {
        let path = self.path.clone();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || {
            let connection = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            connection
                .execute_batch("PRAGMA busy_timeout = 5000")
                .map_err(|e| e.to_string())?;
            connection.execute_batch(&sql).map_err(|e| e.to_string())
        })
        .await
        .expect("the sqlite task does not panic")
    }

    async fn lift_audit_protection(&self) {
        self.execute_raw("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete")
            .await
            .expect("dropping the audit_log triggers");
    }

    async fn finish(self) {}
}

/// The server named by `TELECONSULT_TEST_DATABASE_URL`; each test creates a database
/// of its own there, so that tests and runs do not see each other's data.
pub struct Postgres {
    server_url: String,
    database: String,
    url: String,
    store: OnceCell<SharedStore>,
}

const DATABASE_URL_VARIABLE: &str = "TELECONSULT_TEST_DATABASE_URL";

impl Backend for Postgres {
    async fn start() -> Option<Self> {
        let Ok(server_url) = std::env::var(DATABASE_URL_VARIABLE) else {
            println!("postgres store test skipped: {DATABASE_URL_VARIABLE} is not set");
            return None;
        };
        let database = format!(
            "tc_test_{:016x}",
            RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
        );
        connect_raw(&server_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .expect("creating the test database");
        let url = with_database(&server_url, &database);
        Some(Self {
            server_url,
            database,
            url,
            store: OnceCell::new(),
        })
    }

    fn opened(&self) -> &OnceCell<SharedStore> {
        &self.store
    }

    fn url(&self) -> &str {
        &self.url
    }

    async fn execute_raw(&self, sql: &str) -> Result<(), String> {
        connect_raw(&self.url)
            .await
            .batch_execute(sql)
            .await
            .map_err(|error| match error.as_db_error() {
                Some(db_error) => db_error.message().to_owned(),
                None => error.to_string(),
            })
    }

    async fn lift_audit_protection(&self) {
        self.execute_raw("ALTER TABLE audit_log DISABLE TRIGGER USER")
            .await
            .expect("disabling the audit_log triggers");
    }

    async fn finish(self) {
        // Closes the store's connections; FORCE ends any that are still closing.
        drop(self.store);
        connect_raw(&self.server_url)
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .await
            .expect("dropping the test database");
    }
}

async fn connect_raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test postgres server");
    tokio::spawn(connection);
    client
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, parameters) = match url.split_once('?') {
        Some((base, parameters)) => (base, Some(parameters)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match parameters {
        Some(parameters) => format!("{base}/{database}?{parameters}"),
        None => format!("{base}/{database}"),
    }
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "tc_x"),
        "postgres://postgres@127.0.0.1:5432/tc_x"
    );
    assert_eq!(
        with_database("postgresql://u:p@db?sslmode=disable", "tc_x"),
        "postgresql://u:p@db/tc_x?sslmode=disable"
    );
}
