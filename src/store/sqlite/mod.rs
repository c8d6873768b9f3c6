//! The embedded SQLite backend: WAL journal, durable commits (synchronous=FULL), one
//! writer thread with group commit, and a pool of read-only connections.

mod accounts;
mod audit_support;
mod scheduling;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use tracing::instrument;

use self::writer::Writer;
use super::rows::{self, AuditRow, SpecialistRow};
use super::{AuditQuery, DirectorySeed, ImportSummary, Result, Store, StoreError};
use crate::audit::{AuditEntry, AuditRecord, chain};
use crate::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, Specialist, SpecialistProfile,
    SpecialistQuery, User, UserQuery, UserUpdate,
};
use crate::domain::ids::{InstitutionId, UserId};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/sqlite/0001_directory_and_audit.sql"),
    ),
    (2, include_str!("../migrations/sqlite/0002_scheduling.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_audit_queries.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_audit_checkpoints_and_forwarding.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_accounts.sql")),
];

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(StoreError::internal)?
    }

    fn open_blocking(path: PathBuf) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(StoreError::internal)?;
        }
        let mut connection = Connection::open(&path).map_err(sqlite_error)?;
        // Switching a new file to WAL needs it to itself, and SQLite answers BUSY at
        // once rather than waiting; nodes opening a new database together retry.
        let mut attempts = 0;
        loop {
            let prepared = connection
                .execute_batch(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(sqlite_error)
                .and_then(|()| migrate(&mut connection));
            match prepared {
                Err(StoreError::Unavailable(_)) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100 * attempts));
                }
                other => break other?,
            }
        }
        Ok(Self {
            writer: Writer::start(connection),
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.take()?;
            let result = work(&connection);
            readers.put(connection);
            result
        })
        .await
        .map_err(StoreError::internal)?
    }
}

/// Read-only connections, opened on demand and kept for reuse. WAL lets them read
/// while the writer writes.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection> {
        if let Some(connection) = self.idle.lock().expect("reader pool lock").pop() {
            return Ok(connection);
        }
        let connection = Connection::open(&self.path).map_err(sqlite_error)?;
        connection
            .execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
            .map_err(sqlite_error)?;
        Ok(connection)
    }

    fn put(&self, connection: Connection) {
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < 8 {
            idle.push(connection);
        }
    }
}

fn migrate(connection: &mut Connection) -> Result<()> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at_us INTEGER NOT NULL
             ) STRICT",
        )
        .map_err(sqlite_error)?;
    for (version, sql) in MIGRATIONS {
        // IMMEDIATE: take the write lock up front, so that two processes opening a new
        // database wait for each other instead of failing on a lock upgrade.
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        let applied: bool = transaction
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .map_err(sqlite_error)?;
        if !applied {
            tracing::info!(version, "applying sqlite migration");
            transaction.execute_batch(sql).map_err(sqlite_error)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, applied_at_us) VALUES (?1, ?2)",
                    params![version, rows::micros(crate::audit::now_micros())],
                )
                .map_err(sqlite_error)?;
        }
        transaction.commit().map_err(sqlite_error)?;
    }
    Ok(())
}

/// Translates SQLite errors that are not constraint violations the caller expected.
pub(super) fn sqlite_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable("the database is busy".into())
        }
        Some(ErrorCode::ConstraintViolation) => {
            StoreError::Conflict("the change contradicts stored data".into())
        }
        _ => StoreError::internal(error),
    }
}

pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Appends `entry` to the chain inside the caller's transaction.
pub(super) fn append_audit(connection: &Connection, entry: AuditEntry) -> Result<AuditRecord> {
    let head: Option<(i64, String)> = connection
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error)?;
    let record = chain::seal(
        head.as_ref()
            .map(|(seq, hash)| (*seq as u64, hash.as_str())),
        entry,
    );
    let row = AuditRow::from_record(&record);
    connection
        .execute(
            "INSERT INTO audit_log (seq, at_us, actor_user, actor_institution, actor_role,
                 actor_fingerprint, action, target, target_institution, outcome, details,
                 prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                row.seq,
                row.at_us,
                row.actor_user,
                row.actor_institution,
                row.actor_role,
                row.actor_fingerprint,
                row.action,
                row.target,
                row.target_institution,
                row.outcome,
                row.details,
                row.prev_hash,
                row.hash
            ],
        )
        .map_err(sqlite_error)?;
    Ok(record)
}

fn audit_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: row.get(0)?,
        at_us: row.get(1)?,
        actor_user: row.get(2)?,
        actor_institution: row.get(3)?,
        actor_role: row.get(4)?,
        actor_fingerprint: row.get(5)?,
        action: row.get(6)?,
        target: row.get(7)?,
        target_institution: row.get(8)?,
        outcome: row.get(9)?,
        details: row.get(10)?,
        prev_hash: row.get(11)?,
        hash: row.get(12)?,
    })
}

const INSTITUTION_COLUMNS: &str = "id, kind, name_zh, name_en, region";

fn institution_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Institution>> {
    let id: String = row.get(0)?;
    let kind: String = row.get(1)?;
    let name_zh: String = row.get(2)?;
    let name_en: String = row.get(3)?;
    let region: String = row.get(4)?;
    Ok(rows::institution(&id, &kind, &name_zh, &name_en, &region))
}

fn load_institution(connection: &Connection, id: &InstitutionId) -> Result<Option<Institution>> {
    connection
        .query_row(
            &format!("SELECT {INSTITUTION_COLUMNS} FROM institutions WHERE id = ?1"),
            [id.as_str()],
            institution_row,
        )
        .optional()
        .map_err(sqlite_error)?
        .transpose()
}

const USER_COLUMNS: &str = "id, institution_id, role, display_name_zh, display_name_en, active";

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<User>> {
    let id: String = row.get(0)?;
    let institution: String = row.get(1)?;
    let role: String = row.get(2)?;
    let name_zh: String = row.get(3)?;
    let name_en: String = row.get(4)?;
    let active: bool = row.get(5)?;
    Ok(rows::user(
        &id,
        &institution,
        &role,
        &name_zh,
        &name_en,
        active,
    ))
}

fn load_user(connection: &Connection, id: &UserId) -> Result<Option<User>> {
    connection
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id.as_str()],
            user_row,
        )
        .optional()
        .map_err(sqlite_error)?
        .transpose()
}

/// Specialists with their user's names; specialties and languages as sorted lists.
const SPECIALIST_SELECT: &str = "
    SELECT s.user_id, u.institution_id, u.display_name_zh, u.display_name_en, s.title,
           s.on_call, s.slot_minutes,
           (SELECT group_concat(specialty, ',') FROM
               (SELECT specialty FROM specialist_specialties x
                WHERE x.user_id = s.user_id ORDER BY specialty)),
           (SELECT group_concat(language, ',') FROM
               (SELECT language FROM specialist_languages l
                WHERE l.user_id = s.user_id ORDER BY language))
    FROM specialists s JOIN users u ON u.id = s.user_id";

fn specialist_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Specialist>> {
    Ok(SpecialistRow {
        user_id: row.get(0)?,
        institution_id: row.get(1)?,
        display_name_zh: row.get(2)?,
        display_name_en: row.get(3)?,
        title: row.get(4)?,
        on_call: row.get(5)?,
        slot_minutes: row.get(6)?,
        specialties: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
        languages: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
    }
    .into_specialist())
}

fn load_specialist(connection: &Connection, id: &UserId) -> Result<Option<Specialist>> {
    connection
        .query_row(
            &format!("{SPECIALIST_SELECT} WHERE s.user_id = ?1"),
            [id.as_str()],
            specialist_row,
        )
        .optional()
        .map_err(sqlite_error)?
        .transpose()
}

fn insert_institution(connection: &Connection, institution: &Institution) -> Result<()> {
    connection
        .execute(
            "INSERT INTO institutions (id, kind, name_zh, name_en, region) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                institution.id.as_str(),
                institution.kind.as_str(),
                institution.name_zh.as_str(),
                institution.name_en.as_str(),
                institution.region.as_str()
            ],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists("institution", &institution.id)
            } else {
                sqlite_error(error)
            }
        })?;
    Ok(())
}

/// Inserts a user; with `replace`, an existing user of that id is overwritten.
fn write_user(connection: &Connection, user: &User, replace: bool) -> Result<()> {
    let upsert = if replace {
        "ON CONFLICT (id) DO UPDATE SET institution_id = excluded.institution_id,
             role = excluded.role, display_name_zh = excluded.display_name_zh,
             display_name_en = excluded.display_name_en, active = excluded.active"
    } else {
        ""
    };
    connection
        .execute(
            &format!(
                "INSERT INTO users (id, institution_id, role, display_name_zh, display_name_en, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) {upsert}"
            ),
            params![
                user.id.as_str(),
                user.institution.as_str(),
                user.role.as_str(),
                user.display_name_zh.as_str(),
                user.display_name_en.as_str(),
                user.active
            ],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists("user", &user.id)
            } else {
                sqlite_error(error)
            }
        })?;
    Ok(())
}

fn write_profile(connection: &Connection, profile: &SpecialistProfile) -> Result<()> {
    let id = profile.user_id.as_str();
    connection
        .execute(
            "INSERT INTO specialists (user_id, title, on_call, slot_minutes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET title = excluded.title,
                 on_call = excluded.on_call, slot_minutes = excluded.slot_minutes",
            params![
                id,
                profile.title.as_str(),
                profile.on_call,
                profile.slot_minutes.get()
            ],
        )
        .map_err(sqlite_error)?;
    connection
        .execute(
            "DELETE FROM specialist_specialties WHERE user_id = ?1",
            [id],
        )
        .map_err(sqlite_error)?;
    connection
        .execute("DELETE FROM specialist_languages WHERE user_id = ?1", [id])
        .map_err(sqlite_error)?;
    for specialty in &profile.specialties {
        connection
            .execute(
                "INSERT INTO specialist_specialties (user_id, specialty) VALUES (?1, ?2)",
                params![id, specialty.as_str()],
            )
            .map_err(sqlite_error)?;
    }
    for language in &profile.languages {
        connection
            .execute(
                "INSERT INTO specialist_languages (user_id, language) VALUES (?1, ?2)",
                params![id, language.as_str()],
            )
            .map_err(sqlite_error)?;
    }
    Ok(())
}

fn require_institution(connection: &Connection, id: &InstitutionId) -> Result<Institution> {
    load_institution(connection, id)?.ok_or_else(|| StoreError::not_found("institution", id))
}

#[async_trait]
impl Store for SqliteStore {
    #[instrument(skip_all, fields(institution = %institution.id))]
    async fn create_institution(&self, institution: &Institution, audit: AuditEntry) -> Result<()> {
        let institution = institution.clone();
        self.writer
            .write(move |connection| {
                insert_institution(connection, &institution)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    #[instrument(skip_all, fields(institution = %update.id))]
    async fn update_institution(
        &self,
        update: &InstitutionUpdate,
        audit: AuditEntry,
    ) -> Result<Institution> {
        let update = update.clone();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE institutions SET name_zh = ?2, name_en = ?3, region = ?4 WHERE id = ?1",
                        params![
                            update.id.as_str(),
                            update.name_zh.as_str(),
                            update.name_en.as_str(),
                            update.region.as_str()
                        ],
                    )
                    .map_err(sqlite_error)?;
                if changed == 0 {
                    return Err(StoreError::not_found("institution", &update.id));
                }
                append_audit(connection, audit)?;
                require_institution(connection, &update.id)
            })
            .await
    }

    async fn institution(&self, id: &InstitutionId) -> Result<Option<Institution>> {
        let id = id.clone();
        self.read(move |connection| load_institution(connection, &id))
            .await
    }

    async fn institutions(&self, kind: Option<InstitutionKind>) -> Result<Vec<Institution>> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT {INSTITUTION_COLUMNS} FROM institutions
                     WHERE ?1 IS NULL OR kind = ?1 ORDER BY id"
                ))
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map([kind.map(InstitutionKind::as_str)], institution_row)
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error)?).collect()
        })
        .await
    }

    #[instrument(skip_all, fields(user = %user.id))]
    async fn create_user(&self, user: &User, audit: AuditEntry) -> Result<()> {
        let user = user.clone();
        self.writer
            .write(move |connection| {
                let institution = require_institution(connection, &user.institution)?;
                user.check_placement(institution.kind)
                    .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
                write_user(connection, &user, false)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    #[instrument(skip_all, fields(user = %update.id))]
    async fn update_user(&self, update: &UserUpdate, audit: AuditEntry) -> Result<User> {
        let update = update.clone();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE users SET display_name_zh = ?2, display_name_en = ?3, active = ?4
                         WHERE id = ?1",
                        params![
                            update.id.as_str(),
                            update.display_name_zh.as_str(),
                            update.display_name_en.as_str(),
                            update.active
                        ],
                    )
                    .map_err(sqlite_error)?;
                if changed == 0 {
                    return Err(StoreError::not_found("user", &update.id));
                }
                append_audit(connection, audit)?;
                load_user(connection, &update.id)?
                    .ok_or_else(|| StoreError::not_found("user", &update.id))
            })
            .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        let id = id.clone();
        self.read(move |connection| load_user(connection, &id))
            .await
    }

    async fn users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let query = query.clone();
        self.read(move |connection| {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT {USER_COLUMNS} FROM users
                     WHERE (?1 IS NULL OR institution_id = ?1)
                       AND (?2 IS NULL OR role = ?2)
                       AND (?3 OR active)
                     ORDER BY id"
                ))
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map(
                    params![
                        query.institution.as_ref().map(InstitutionId::as_str),
                        query.role.map(|role| role.as_str()),
                        query.include_inactive
                    ],
                    user_row,
                )
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error)?).collect()
        })
        .await
    }

    #[instrument(skip_all, fields(user = %profile.user_id))]
    async fn set_specialist_profile(
        &self,
        profile: &SpecialistProfile,
        audit: AuditEntry,
    ) -> Result<Specialist> {
        let profile = profile.clone();
        self.writer
            .write(move |connection| {
                let user = load_user(connection, &profile.user_id)?
                    .ok_or_else(|| StoreError::not_found("user", &profile.user_id))?;
                Specialist::check_eligible(&user)
                    .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
                write_profile(connection, &profile)?;
                append_audit(connection, audit)?;
                load_specialist(connection, &profile.user_id)?
                    .ok_or_else(|| StoreError::not_found("specialist", &profile.user_id))
            })
            .await
    }

    async fn specialist(&self, user: &UserId) -> Result<Option<Specialist>> {
        let user = user.clone();
        self.read(move |connection| load_specialist(connection, &user))
            .await
    }

    async fn search_specialists(&self, query: &SpecialistQuery) -> Result<Vec<Specialist>> {
        let query = query.clone();
        self.read(move |connection| {
            let mut statement = connection
                .prepare(&format!(
                    "{SPECIALIST_SELECT}
                     WHERE u.active
                       AND (?1 IS NULL OR EXISTS (SELECT 1 FROM specialist_specialties x
                            WHERE x.user_id = s.user_id AND x.specialty = ?1))
                       AND (?2 IS NULL OR u.institution_id = ?2)
                       AND (?3 IS NULL OR EXISTS (SELECT 1 FROM specialist_languages l
                            WHERE l.user_id = s.user_id AND l.language = ?3))
                       AND (?4 IS NULL OR instr(lower(u.display_name_en), lower(?4)) > 0
                            OR instr(u.display_name_zh, ?4) > 0)
                       AND (?5 IS NULL OR s.user_id > ?5)
                     ORDER BY s.user_id
                     LIMIT ?6"
                ))
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map(
                    params![
                        query.specialty.as_ref().map(|s| s.as_str()),
                        query.institution.as_ref().map(InstitutionId::as_str),
                        query.language.map(|l| l.as_str()),
                        query.name_contains.as_deref(),
                        query.after.as_ref().map(UserId::as_str),
                        query.limit.get()
                    ],
                    specialist_row,
                )
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error)?).collect()
        })
        .await
    }

    #[instrument(skip_all)]
    async fn import_directory(
        &self,
        seed: &DirectorySeed,
        audit: AuditEntry,
    ) -> Result<ImportSummary> {
        let seed = seed.clone();
        self.writer
            .write(move |connection| {
                for institution in &seed.institutions {
                    connection
                        .execute(
                            "INSERT INTO institutions (id, kind, name_zh, name_en, region)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (id) DO UPDATE SET name_zh = excluded.name_zh,
                                 name_en = excluded.name_en, region = excluded.region",
                            params![
                                institution.id.as_str(),
                                institution.kind.as_str(),
                                institution.name_zh.as_str(),
                                institution.name_en.as_str(),
                                institution.region.as_str()
                            ],
                        )
                        .map_err(sqlite_error)?;
                    let kind = require_institution(connection, &institution.id)?.kind;
                    if kind != institution.kind {
                        return Err(StoreError::Conflict(format!(
                            "institution {} is stored as {kind}, not {}",
                            institution.id, institution.kind
                        )));
                    }
                }
                for user in &seed.users {
                    let institution = require_institution(connection, &user.institution)?;
                    user.check_placement(institution.kind).map_err(|problem| {
                        StoreError::Conflict(format!("user {}: {problem}", user.id))
                    })?;
                    write_user(connection, user, true)?;
                }
                for profile in &seed.specialists {
                    let user = load_user(connection, &profile.user_id)?
                        .ok_or_else(|| StoreError::not_found("user", &profile.user_id))?;
                    Specialist::check_eligible(&user)
                        .map_err(|problem| StoreError::Conflict(problem.to_string()))?;
                    write_profile(connection, profile)?;
                }
                append_audit(connection, audit)?;
                Ok(ImportSummary {
                    institutions: seed.institutions.len(),
                    users: seed.users.len(),
                    specialists: seed.specialists.len(),
                })
            })
            .await
    }

    #[instrument(skip_all, fields(action = %entry.action))]
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        self.writer
            .write(move |connection| append_audit(connection, entry))
            .await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let query = query.clone();
        let order = if query.newest_first { "DESC" } else { "ASC" };
        let cursor = if query.newest_first {
            "seq < ?9"
        } else {
            "seq > ?9"
        };
        let sql = format!(
            "SELECT seq, at_us, actor_user, actor_institution, actor_role, actor_fingerprint,
                    action, target, target_institution, outcome, details, prev_hash, hash
             FROM audit_log
             WHERE (?1 IS NULL OR at_us >= ?1)
               AND (?2 IS NULL OR at_us < ?2)
               AND (?3 IS NULL OR actor_institution = ?3 OR target_institution = ?3
                    OR (target LIKE 'consultation:%' AND EXISTS (
                        SELECT 1 FROM consultations c
                        WHERE 'consultation:' || c.id = audit_log.target
                          AND (c.inviting_institution_id = ?3 OR c.consulting_institution_id = ?3))))
               AND (?4 IS NULL OR actor_user = ?4)
               AND (?5 IS NULL OR actor_role = ?5)
               AND (?6 IS NULL OR target = ?6)
               AND (?7 IS NULL OR action = ?7)
               AND (?8 IS NULL OR outcome = ?8)
               AND (?9 IS NULL OR {cursor})
             ORDER BY seq {order}
             LIMIT ?10"
        );
        self.read(move |connection| {
            let mut statement = connection.prepare(&sql).map_err(sqlite_error)?;
            let rows = statement
                .query_map(
                    params![
                        query.from.map(rows::micros),
                        query.to.map(rows::micros),
                        query.institution,
                        query.user,
                        query.role,
                        query.target,
                        query.action,
                        query.outcome.map(|o| o.as_str()),
                        query
                            .after_seq
                            .map(|seq| i64::try_from(seq).unwrap_or(i64::MAX)),
                        query.limit.get()
                    ],
                    audit_row,
                )
                .map_err(sqlite_error)?;
            rows.map(|row| row.map(AuditRow::into_record).map_err(sqlite_error))
                .collect()
        })
        .await
    }

    async fn audit_records(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        self.read(move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT seq, at_us, actor_user, actor_institution, actor_role,
                            actor_fingerprint, action, target, target_institution, outcome,
                            details, prev_hash, hash
                     FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map(
                    params![i64::try_from(after).unwrap_or(i64::MAX), limit],
                    audit_row,
                )
                .map_err(sqlite_error)?;
            rows.map(|row| row.map(AuditRow::into_record).map_err(sqlite_error))
                .collect()
        })
        .await
    }
}
