//! Institutions and users in PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::error::{insert_error, postgres_error};
use super::query::{self, column};
use crate::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, User, UserQuery, UserUpdate,
};
use crate::domain::ids::{InstitutionId, UserId};
use crate::store::{Result, StoreError, rows};

const INSTITUTION_COLUMNS: &str = "id, kind, name_zh, name_en, region";

fn institution_row(row: &Row) -> Result<Institution> {
    rows::institution(
        column(row, 0)?,
        column(row, 1)?,
        column(row, 2)?,
        column(row, 3)?,
        column(row, 4)?,
    )
}

pub async fn load_institution(
    client: &impl GenericClient,
    id: &InstitutionId,
) -> Result<Option<Institution>> {
    query::optional(
        client,
        &format!("SELECT {INSTITUTION_COLUMNS} FROM institutions WHERE id = $1"),
        &[&id.as_str()],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| institution_row(&row))
    .transpose()
}

pub async fn require_institution(
    client: &impl GenericClient,
    id: &InstitutionId,
) -> Result<Institution> {
    load_institution(client, id)
        .await?
        .ok_or_else(|| StoreError::not_found("institution", id))
}

pub async fn institutions(
    client: &impl GenericClient,
    kind: Option<InstitutionKind>,
) -> Result<Vec<Institution>> {
    query::rows(
        client,
        &format!(
            "SELECT {INSTITUTION_COLUMNS} FROM institutions
             WHERE $1::TEXT IS NULL OR kind = $1 ORDER BY id"
        ),
        &[&kind.map(InstitutionKind::as_str)],
    )
    .await
    .map_err(postgres_error)?
    .iter()
    .map(institution_row)
    .collect()
}

pub async fn insert_institution(
    client: &impl GenericClient,
    institution: &Institution,
) -> Result<()> {
    query::execute(
        client,
        "INSERT INTO institutions (id, kind, name_zh, name_en, region) VALUES ($1, $2, $3, $4, $5)",
        &[
            &institution.id.as_str(),
            &institution.kind.as_str(),
            &institution.name_zh.as_str(),
            &institution.name_en.as_str(),
            &institution.region.as_str(),
        ],
    )
    .await
    .map_err(insert_error("institution", &institution.id))?;
    Ok(())
}

/// Inserts an institution or renames an existing one; returns what is stored, whose
/// kind may differ from `institution`'s since a kind never changes.
pub async fn upsert_institution(
    client: &impl GenericClient,
    institution: &Institution,
) -> Result<Institution> {
    let row = query::one(
        client,
        &format!(
            "INSERT INTO institutions (id, kind, name_zh, name_en, region)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name_zh = EXCLUDED.name_zh,
                 name_en = EXCLUDED.name_en, region = EXCLUDED.region
             RETURNING {INSTITUTION_COLUMNS}"
        ),
        &[
            &institution.id.as_str(),
            &institution.kind.as_str(),
            &institution.name_zh.as_str(),
            &institution.name_en.as_str(),
            &institution.region.as_str(),
        ],
    )
    .await
    .map_err(postgres_error)?;
    institution_row(&row)
}

/// Applies `update`; `None` when there is no such institution.
pub async fn update_institution(
    client: &impl GenericClient,
    update: &InstitutionUpdate,
) -> Result<Option<Institution>> {
    query::optional(
        client,
        &format!(
            "UPDATE institutions SET name_zh = $2, name_en = $3, region = $4 WHERE id = $1
             RETURNING {INSTITUTION_COLUMNS}"
        ),
        &[
            &update.id.as_str(),
            &update.name_zh.as_str(),
            &update.name_en.as_str(),
            &update.region.as_str(),
        ],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| institution_row(&row))
    .transpose()
}

const USER_COLUMNS: &str = "id, institution_id, role, display_name_zh, display_name_en, active";

fn user_row(row: &Row) -> Result<User> {
    rows::user(
        column(row, 0)?,
        column(row, 1)?,
        column(row, 2)?,
        column(row, 3)?,
        column(row, 4)?,
        column(row, 5)?,
    )
}

pub async fn load_user(client: &impl GenericClient, id: &UserId) -> Result<Option<User>> {
    query::optional(
        client,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
        &[&id.as_str()],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| user_row(&row))
    .transpose()
}

/// Loads a user and keeps them from changing until the transaction ends, so that what
/// is checked about them (an active doctor) still holds when the transaction commits.
pub async fn lock_user(client: &impl GenericClient, id: &UserId) -> Result<Option<User>> {
    query::optional(
        client,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR SHARE"),
        &[&id.as_str()],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| user_row(&row))
    .transpose()
}

pub async fn users(client: &impl GenericClient, query: &UserQuery) -> Result<Vec<User>> {
    query::rows(
        client,
        &format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE ($1::TEXT IS NULL OR institution_id = $1)
               AND ($2::TEXT IS NULL OR role = $2)
               AND ($3::BOOLEAN OR active)
             ORDER BY id"
        ),
        &[
            &query.institution.as_ref().map(InstitutionId::as_str),
            &query.role.map(|role| role.as_str()),
            &query.include_inactive,
        ],
    )
    .await
    .map_err(postgres_error)?
    .iter()
    .map(user_row)
    .collect()
}

/// Inserts a user; with `replace`, an existing user of that id is overwritten.
pub async fn write_user(client: &impl GenericClient, user: &User, replace: bool) -> Result<()> {
    let upsert = if replace {
        "ON CONFLICT (id) DO UPDATE SET institution_id = EXCLUDED.institution_id,
             role = EXCLUDED.role, display_name_zh = EXCLUDED.display_name_zh,
             display_name_en = EXCLUDED.display_name_en, active = EXCLUDED.active"
    } else {
        ""
    };
    query::execute(
        client,
        &format!(
            "INSERT INTO users (id, institution_id, role, display_name_zh, display_name_en, active)
             VALUES ($1, $2, $3, $4, $5, $6) {upsert}"
        ),
        &[
            &user.id.as_str(),
            &user.institution.as_str(),
            &user.role.as_str(),
            &user.display_name_zh.as_str(),
            &user.display_name_en.as_str(),
            &user.active,
        ],
    )
    .await
    .map_err(insert_error("user", &user.id))?;
    Ok(())
}

/// Applies `update`; `None` when there is no such user.
pub async fn update_user(client: &impl GenericClient, update: &UserUpdate) -> Result<Option<User>> {
    query::optional(
        client,
        &format!(
            "UPDATE users SET display_name_zh = $2, display_name_en = $3, active = $4
             WHERE id = $1
             RETURNING {USER_COLUMNS}"
        ),
        &[
            &update.id.as_str(),
            &update.display_name_zh.as_str(),
            &update.display_name_en.as_str(),
            &update.active,
        ],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| user_row(&row))
    .transpose()
}
