//! Specialist profiles in PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::error::postgres_error;
use super::query::{self, column};
use crate::domain::directory::{Specialist, SpecialistProfile, SpecialistQuery};
use crate::domain::ids::{InstitutionId, UserId};
use crate::store::Result;
use crate::store::rows::SpecialistRow;

/// Specialists with their user's names; specialties and languages as sorted lists.
const SPECIALIST_SELECT: &str = "
    SELECT s.user_id, u.institution_id, u.display_name_zh, u.display_name_en, s.title,
           s.on_call, s.slot_minutes,
           (SELECT string_agg(x.specialty, ',' ORDER BY x.specialty)
            FROM specialist_specialties x WHERE x.user_id = s.user_id),
           (SELECT string_agg(l.language, ',' ORDER BY l.language)
            FROM specialist_languages l WHERE l.user_id = s.user_id)
    FROM specialists s JOIN users u ON u.id = s.user_id";

fn specialist_row(row: &Row) -> Result<Specialist> {
    SpecialistRow {
        user_id: column(row, 0)?,
        institution_id: column(row, 1)?,
        display_name_zh: column(row, 2)?,
        display_name_en: column(row, 3)?,
        title: column(row, 4)?,
        on_call: column(row, 5)?,
        slot_minutes: i64::from(column::<i32>(row, 6)?),
        specialties: column::<Option<String>>(row, 7)?.unwrap_or_default(),
        languages: column::<Option<String>>(row, 8)?.unwrap_or_default(),
    }
    .into_specialist()
}

pub async fn load_specialist(
    client: &impl GenericClient,
    id: &UserId,
) -> Result<Option<Specialist>> {
    query::optional(
        client,
        &format!("{SPECIALIST_SELECT} WHERE s.user_id = $1"),
        &[&id.as_str()],
    )
    .await
    .map_err(postgres_error)?
    .map(|row| specialist_row(&row))
    .transpose()
}

/// Active specialists matching `query`, ordered by user id. The name matches as in
/// SQLite: ASCII case-insensitively in the English name (hence the "C" collation for
/// `lower`), as a plain substring in the Chinese one.
pub async fn search(
    client: &impl GenericClient,
    query: &SpecialistQuery,
) -> Result<Vec<Specialist>> {
    query::rows(
        client,
        &format!(
            "{SPECIALIST_SELECT}
             WHERE u.active
               AND ($1::TEXT IS NULL OR EXISTS (SELECT 1 FROM specialist_specialties x
                    WHERE x.user_id = s.user_id AND x.specialty = $1))
               AND ($2::TEXT IS NULL OR u.institution_id = $2)
               AND ($3::TEXT IS NULL OR EXISTS (SELECT 1 FROM specialist_languages l
                    WHERE l.user_id = s.user_id AND l.language = $3))
               AND ($4::TEXT IS NULL
                    OR strpos(lower(u.display_name_en COLLATE \"C\"), lower($4 COLLATE \"C\")) > 0
                    OR strpos(u.display_name_zh, $4) > 0)
               AND ($5::TEXT IS NULL OR s.user_id > $5)
             ORDER BY s.user_id
             LIMIT $6"
        ),
        &[
            &query.specialty.as_ref().map(|s| s.as_str()),
            &query.institution.as_ref().map(InstitutionId::as_str),
            &query.language.map(|l| l.as_str()),
            &query.name_contains.as_deref(),
            &query.after.as_ref().map(UserId::as_str),
            &i64::from(query.limit.get()),
        ],
    )
    .await
    .map_err(postgres_error)?
    .iter()
    .map(specialist_row)
    .collect()
}

/// Inserts or replaces a profile, its specialties and its languages.
pub async fn write_profile(client: &impl GenericClient, profile: &SpecialistProfile) -> Result<()> {
    let id = profile.user_id.as_str();
    let slot_minutes =
        i32::try_from(profile.slot_minutes.get()).expect("slot minutes are at most 240");
    query::execute(
        client,
        "INSERT INTO specialists (user_id, title, on_call, slot_minutes) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET title = EXCLUDED.title,
             on_call = EXCLUDED.on_call, slot_minutes = EXCLUDED.slot_minutes",
        &[
            &id,
            &profile.title.as_str(),
            &profile.on_call,
            &slot_minutes,
        ],
    )
    .await
    .map_err(postgres_error)?;
    query::execute(
        client,
        "DELETE FROM specialist_specialties WHERE user_id = $1",
        &[&id],
    )
    .await
    .map_err(postgres_error)?;
    query::execute(
        client,
        "DELETE FROM specialist_languages WHERE user_id = $1",
        &[&id],
    )
    .await
    .map_err(postgres_error)?;
    let specialties: Vec<&str> = profile.specialties.iter().map(|s| s.as_str()).collect();
    query::execute(
        client,
        "INSERT INTO specialist_specialties (user_id, specialty) SELECT $1, unnest($2::TEXT[])",
        &[&id, &specialties],
    )
    .await
    .map_err(postgres_error)?;
    let languages: Vec<&str> = profile.languages.iter().map(|l| l.as_str()).collect();
    query::execute(
        client,
        "INSERT INTO specialist_languages (user_id, language) SELECT $1, unnest($2::TEXT[])",
        &[&id, &languages],
    )
    .await
    .map_err(postgres_error)?;
    Ok(())
}
