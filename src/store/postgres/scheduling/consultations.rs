//! Consultations, their invitees and their slot claims in PostgreSQL.
//!
//! Writers take their locks in one order, so that two of them never wait for each
//! other: the consultation row, then the doctor's slot lock, then the slot claims, and
//! the audit head last (see `audit::append`).

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::super::error::{insert_error, postgres_error};
use super::super::query::{self, column};
use crate::domain::consultation::{Consultation, ConsultationId, ConsultationState};
use crate::domain::ids::UserId;
use crate::domain::policy::ConsultationScope;
use crate::store::rows::{ConsultationRow, micros};
use crate::store::{ConsultationFilter, Result, StoreError};

const COLUMNS: &str = "id, version, state, urgency, inviting_institution_id, requested_by,
    patient_ref, specialty, reason, case_summary, doctor_id, consulting_institution_id,
    start_us, end_us, consent_consenter, consent_method, consent_recorded_by,
    consent_recorded_at_us, consent_witness, state_reason, created_at_us, accepted_at_us,
    escalated_at_us";

/// A consultation with its invitees (users and kinds, in invitation order), in one
/// statement so that a listing is one consistent snapshot.
fn select() -> String {
    format!(
        "SELECT {COLUMNS},
             ARRAY(SELECT i.user_id FROM consultation_invitees i
                   WHERE i.consultation_id = consultations.id ORDER BY i.position),
             ARRAY(SELECT i.kind FROM consultation_invitees i
                   WHERE i.consultation_id = consultations.id ORDER BY i.position)
         FROM consultations"
    )
}

/// What listings sort by: the start, or the request time while there is no window.
const SORT_KEY: &str = "COALESCE(start_us, created_at_us)";

/// Namespace of the per-doctor transaction locks (the two-key form of advisory locks,
/// apart from the migration lock's one-key form): "slot" in ASCII.
const SLOT_LOCK_SPACE: i32 = 0x736c_6f74;

fn consultation(row: &Row) -> Result<Consultation> {
    let users: Vec<String> = column(row, 23)?;
    let kinds: Vec<String> = column(row, 24)?;
    ConsultationRow {
        id: column(row, 0)?,
        version: column(row, 1)?,
        state: column(row, 2)?,
        urgency: column(row, 3)?,
        inviting_institution_id: column(row, 4)?,
        requested_by: column(row, 5)?,
        patient_ref: column(row, 6)?,
        specialty: column(row, 7)?,
        reason: column(row, 8)?,
        case_summary: column(row, 9)?,
        doctor_id: column(row, 10)?,
        consulting_institution_id: column(row, 11)?,
        start_us: column(row, 12)?,
        end_us: column(row, 13)?,
        consent_consenter: column(row, 14)?,
        consent_method: column(row, 15)?,
        consent_recorded_by: column(row, 16)?,
        consent_recorded_at_us: column(row, 17)?,
        consent_witness: column(row, 18)?,
        state_reason: column(row, 19)?,
        created_at_us: column(row, 20)?,
        accepted_at_us: column(row, 21)?,
        escalated_at_us: column(row, 22)?,
    }
    .into_consultation(users.into_iter().zip(kinds).collect())
}

async fn query_consultations(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Consultation>> {
    query::rows(client, sql, params)
        .await
        .map_err(postgres_error)?
        .iter()
        .map(consultation)
        .collect()
}

pub async fn load(
    client: &impl GenericClient,
    id: &ConsultationId,
) -> Result<Option<Consultation>> {
    let sql = format!("{} WHERE id = $1", select());
    Ok(query_consultations(client, &sql, &[&id.as_str()])
        .await?
        .pop())
}

/// Inserts a new consultation with its invitees and slot claim.
pub async fn insert(client: &impl GenericClient, consultation: &Consultation) -> Result<()> {
    let row = ConsultationRow::from_consultation(consultation);
    query::execute(
        client,
        &format!(
            "INSERT INTO consultations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
        ),
        &[
            &row.id,
            &row.version,
            &row.state,
            &row.urgency,
            &row.inviting_institution_id,
            &row.requested_by,
            &row.patient_ref,
            &row.specialty,
            &row.reason,
            &row.case_summary,
            &row.doctor_id,
            &row.consulting_institution_id,
            &row.start_us,
            &row.end_us,
            &row.consent_consenter,
            &row.consent_method,
            &row.consent_recorded_by,
            &row.consent_recorded_at_us,
            &row.consent_witness,
            &row.state_reason,
            &row.created_at_us,
            &row.accepted_at_us,
            &row.escalated_at_us,
        ],
    )
    .await
    .map_err(insert_error("consultation", &consultation.id))?;
    insert_invitees(client, consultation).await?;
    claim_slot(client, consultation).await
}

/// Stores the next version of a stored consultation: only over the version before it
/// (`Concurrent` otherwise), with its invitees, and with its slot claim following it.
pub async fn write_change(client: &impl GenericClient, consultation: &Consultation) -> Result<()> {
    let row = ConsultationRow::from_consultation(consultation);
    // Of concurrent writers of the same version, the first locks the row; the others
    // wait for it, find the version changed and update nothing.
    let changed = query::execute(
        client,
        "UPDATE consultations SET version = $2, state = $3, doctor_id = $4,
             consulting_institution_id = $5, start_us = $6, end_us = $7,
             consent_consenter = $8, consent_method = $9, consent_recorded_by = $10,
             consent_recorded_at_us = $11, consent_witness = $12, state_reason = $13,
             accepted_at_us = $14, escalated_at_us = $15
         WHERE id = $1 AND version = $2::BIGINT - 1",
        &[
            &row.id,
            &row.version,
            &row.state,
            &row.doctor_id,
            &row.consulting_institution_id,
            &row.start_us,
            &row.end_us,
            &row.consent_consenter,
            &row.consent_method,
            &row.consent_recorded_by,
            &row.consent_recorded_at_us,
            &row.consent_witness,
            &row.state_reason,
            &row.accepted_at_us,
            &row.escalated_at_us,
        ],
    )
    .await
    .map_err(postgres_error)?;
    if changed == 0 {
        let exists: bool = column(
            &query::one(
                client,
                "SELECT EXISTS (SELECT 1 FROM consultations WHERE id = $1)",
                &[&row.id],
            )
            .await
            .map_err(postgres_error)?,
            0,
        )?;
        return Err(if exists {
            StoreError::Concurrent {
                entity: "consultation",
                id: row.id,
            }
        } else {
            StoreError::not_found("consultation", &row.id)
        });
    }
    query::execute(
        client,
        "DELETE FROM consultation_invitees WHERE consultation_id = $1",
        &[&row.id],
    )
    .await
    .map_err(postgres_error)?;
    insert_invitees(client, consultation).await?;
    if let Some(doctor) = &consultation.doctor {
        lock_doctor_slots(client, doctor).await?;
    }
    query::execute(
        client,
        "DELETE FROM slot_claims WHERE consultation_id = $1",
        &[&row.id],
    )
    .await
    .map_err(postgres_error)?;
    claim_slot(client, consultation).await
}

async fn insert_invitees(client: &impl GenericClient, consultation: &Consultation) -> Result<()> {
    let (users, kinds): (Vec<String>, Vec<String>) =
        ConsultationRow::invitees(consultation).into_iter().unzip();
    if users.is_empty() {
        return Ok(());
    }
    query::execute(
        client,
        "INSERT INTO consultation_invitees (consultation_id, user_id, kind, position)
         SELECT $1, x.user_id, x.kind, x.n - 1
         FROM unnest($2::TEXT[], $3::TEXT[]) WITH ORDINALITY AS x(user_id, kind, n)",
        &[&consultation.id.as_str(), &users, &kinds],
    )
    .await
    .map_err(postgres_error)?;
    Ok(())
}

/// Serialises changes to one doctor's slot claims until the transaction ends. The
/// primary key of `slot_claims` alone prevents double booking; this lock only keeps
/// two transactions that each release a slot the other wants (two reschedules
/// swapping slots) from deadlocking, so that the later one sees the earlier one's
/// outcome, as it would in SQLite.
async fn lock_doctor_slots(client: &impl GenericClient, doctor: &UserId) -> Result<()> {
    query::execute(
        client,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&SLOT_LOCK_SPACE, &doctor.as_str()],
    )
    .await
    .map_err(postgres_error)?;
    Ok(())
}

/// Claims every quantum of the consultation's slot, if it holds one. A quantum already
/// claimed means the slot is taken; one being claimed by a transaction still open
/// makes this one wait for it, and fail if it commits.
async fn claim_slot(client: &impl GenericClient, consultation: &Consultation) -> Result<()> {
    let Some((doctor, window)) = consultation.slot_claim() else {
        return Ok(());
    };
    lock_doctor_slots(client, doctor).await?;
    let quanta: Vec<i64> = window.quanta().into_iter().map(micros).collect();
    query::execute(
        client,
        "INSERT INTO slot_claims (doctor_id, quantum_start_us, consultation_id)
         SELECT $1, unnest($2::BIGINT[]), $3",
        &[&doctor.as_str(), &quanta, &consultation.id.as_str()],
    )
    .await
    .map_err(|error| {
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::already_exists("slot", format!("{doctor} at {window}"))
        } else {
            postgres_error(error)
        }
    })?;
    Ok(())
}

/// Numbers the parameters of a statement assembled from parts.
#[derive(Default)]
struct Parameters<'a> {
    values: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Parameters<'a> {
    /// Adds a value; returns its placeholder.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }
}

/// Consultations in `scope` that pass `filter`, by sort key then id.
pub async fn list(
    client: &impl GenericClient,
    scope: &ConsultationScope,
    filter: &ConsultationFilter,
) -> Result<Vec<Consultation>> {
    // The values the statement refers to, owned here for the parameters to borrow.
    let (id, specialties, on_call): (&str, Vec<&str>, bool) = match scope {
        ConsultationScope::All => ("", Vec::new(), false),
        ConsultationScope::Institution(institution) | ConsultationScope::Inviting(institution) => {
            (institution.as_str(), Vec::new(), false)
        }
        ConsultationScope::Doctor {
            user,
            specialties,
            on_call,
        } => (
            user.as_str(),
            specialties.iter().map(|s| s.as_str()).collect(),
            *on_call,
        ),
        ConsultationScope::Interpreter(user) => (user.as_str(), Vec::new(), false),
    };
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let starting = filter
        .starting
        .map(|window| (micros(window.start()), micros(window.end())));
    let after = filter.after.as_ref().map(|(key, id)| (*key, id.as_str()));
    let limit = i64::from(filter.limit.get());

    let mut parameters = Parameters::default();
    let mut conditions = vec![match scope {
        ConsultationScope::All => "TRUE".to_owned(),
        ConsultationScope::Institution(_) => {
            let institution = parameters.bind(&id);
            format!(
                "(inviting_institution_id = {institution}
                  OR consulting_institution_id = {institution})"
            )
        }
        ConsultationScope::Inviting(_) => {
            format!("inviting_institution_id = {}", parameters.bind(&id))
        }
        ConsultationScope::Doctor { .. } => {
            let user = parameters.bind(&id);
            let specialties = parameters.bind(&specialties);
            let on_call = parameters.bind(&on_call);
            format!(
                "(doctor_id = {user}
                  OR EXISTS (SELECT 1 FROM consultation_invitees i
                             WHERE i.consultation_id = consultations.id AND i.user_id = {user}
                               AND i.kind = 'doctor')
                  OR (urgency = 'urgent'
                      AND specialty = ANY({specialties}::TEXT[])
                      AND (state = 'escalated' OR (state = 'requested' AND {on_call}::BOOLEAN))))"
            )
        }
        ConsultationScope::Interpreter(_) => format!(
            "EXISTS (SELECT 1 FROM consultation_invitees i
                     WHERE i.consultation_id = consultations.id AND i.user_id = {}
                       AND i.kind = 'interpreter')",
            parameters.bind(&id)
        ),
    }];
    if !states.is_empty() {
        conditions.push(format!("state = ANY({}::TEXT[])", parameters.bind(&states)));
    }
    if let Some((from, to)) = &starting {
        // Pending urgent requests have no window yet and always pass.
        conditions.push(format!(
            "(start_us IS NULL OR (start_us >= {} AND start_us < {}))",
            parameters.bind(from),
            parameters.bind(to)
        ));
    }
    if let Some((key, after_id)) = &after {
        conditions.push(format!(
            "({SORT_KEY}, id) > ({}::BIGINT, {}::TEXT)",
            parameters.bind(key),
            parameters.bind(after_id)
        ));
    }
    let sql = format!(
        "{} WHERE {} ORDER BY {SORT_KEY}, id LIMIT {}",
        select(),
        conditions.join(" AND "),
        parameters.bind(&limit)
    );
    query_consultations(client, &sql, &parameters.values).await
}

/// Urgent requests nobody has answered, made before `requested_before`, oldest first.
pub async fn unanswered_urgent(
    client: &impl GenericClient,
    requested_before: OffsetDateTime,
) -> Result<Vec<Consultation>> {
    let sql = format!(
        "{} WHERE state = $1 AND urgency = 'urgent' AND created_at_us < $2
         ORDER BY created_at_us, id",
        select()
    );
    query_consultations(
        client,
        &sql,
        &[
            &ConsultationState::Requested.as_str(),
            &micros(requested_before),
        ],
    )
    .await
}

/// Scheduled consultations whose window ended before `ended_before`, earliest first.
pub async fn missed(
    client: &impl GenericClient,
    ended_before: OffsetDateTime,
) -> Result<Vec<Consultation>> {
    let sql = format!(
        "{} WHERE state = $1 AND end_us < $2 ORDER BY end_us, id",
        select()
    );
    query_consultations(
        client,
        &sql,
        &[
            &ConsultationState::Scheduled.as_str(),
            &micros(ended_before),
        ],
    )
    .await
}
