//! Scheduling on SQLite: availability, consultations with their slot claims, and
//! opinion reports.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use tracing::instrument;

use super::{SqliteStore, append_audit, is_unique_violation, sqlite_error};
use crate::audit::AuditEntry;
use crate::domain::consultation::{Consultation, ConsultationId, ConsultationState};
use crate::domain::ids::UserId;
use crate::domain::opinion::OpinionReport;
use crate::domain::policy::ConsultationScope;
use crate::domain::schedule::{Availability, Window};
use crate::store::rows::{self, ConsultationRow, InviteeRow, OpinionRow, micros};
use crate::store::{
    ConsultationFilter, Result, SchedulingStore, SignedOpinion, StoreError, StoredOpinion,
};

fn load_availability(connection: &Connection, doctor: &UserId) -> Result<Option<Availability>> {
    let row: Option<(String, bool)> = connection
        .query_row(
            "SELECT weekly, auto_accept FROM availability WHERE doctor_id = ?1",
            [doctor.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error)?;
    let Some((weekly, auto_accept)) = row else {
        return Ok(None);
    };
    let mut statement = connection
        .prepare_cached(
            "SELECT start_us, end_us, reason FROM availability_exceptions
             WHERE doctor_id = ?1 ORDER BY start_us",
        )
        .map_err(sqlite_error)?;
    let exceptions = statement
        .query_map([doctor.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(sqlite_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sqlite_error)?;
    rows::availability(doctor.as_str(), &weekly, auto_accept, exceptions).map(Some)
}

const CONSULTATION_COLUMNS: &str = "id, version, state, urgency, inviting_institution_id,
    requested_by, patient_ref, specialty, reason, case_summary, doctor_id,
    consulting_institution_id, start_us, end_us, consent_consenter, consent_method,
    consent_recorded_by, consent_recorded_at_us, consent_witness, state_reason,
    created_at_us, accepted_at_us, escalated_at_us";

fn consultation_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConsultationRow> {
    Ok(ConsultationRow {
        id: row.get(0)?,
        version: row.get(1)?,
        state: row.get(2)?,
        urgency: row.get(3)?,
        inviting_institution_id: row.get(4)?,
        requested_by: row.get(5)?,
        patient_ref: row.get(6)?,
        specialty: row.get(7)?,
        reason: row.get(8)?,
        case_summary: row.get(9)?,
        doctor_id: row.get(10)?,
        consulting_institution_id: row.get(11)?,
        start_us: row.get(12)?,
        end_us: row.get(13)?,
        consent_consenter: row.get(14)?,
        consent_method: row.get(15)?,
        consent_recorded_by: row.get(16)?,
        consent_recorded_at_us: row.get(17)?,
        consent_witness: row.get(18)?,
        state_reason: row.get(19)?,
        created_at_us: row.get(20)?,
        accepted_at_us: row.get(21)?,
        escalated_at_us: row.get(22)?,
    })
}

fn invitees(connection: &Connection, id: &str) -> Result<Vec<InviteeRow>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT user_id, kind FROM consultation_invitees
             WHERE consultation_id = ?1 ORDER BY position",
        )
        .map_err(sqlite_error)?;
    statement
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(sqlite_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sqlite_error)
}

/// Runs a consultation query and completes each row with its invitees.
fn query_consultations(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<Consultation>> {
    let mut statement = connection.prepare_cached(sql).map_err(sqlite_error)?;
    let found = statement
        .query_map(parameters, consultation_row)
        .map_err(sqlite_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sqlite_error)?;
    found
        .into_iter()
        .map(|row| {
            let people = invitees(connection, &row.id)?;
            row.into_consultation(people)
        })
        .collect()
}

fn load_consultation(connection: &Connection, id: &ConsultationId) -> Result<Option<Consultation>> {
    Ok(query_consultations(
        connection,
        &format!("SELECT {CONSULTATION_COLUMNS} FROM consultations WHERE id = ?1"),
        [id.as_str()],
    )?
    .pop())
}

/// Claims every quantum of the consultation's slot, if it holds one. A quantum that
/// is already claimed means the slot is taken.
fn claim_slot(connection: &Connection, consultation: &Consultation) -> Result<()> {
    let Some((doctor, window)) = consultation.slot_claim() else {
        return Ok(());
    };
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO slot_claims (doctor_id, quantum_start_us, consultation_id)
             VALUES (?1, ?2, ?3)",
        )
        .map_err(sqlite_error)?;
    for quantum in window.quanta() {
        statement
            .execute(params![
                doctor.as_str(),
                micros(quantum),
                consultation.id.as_str()
            ])
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::already_exists("slot", format!("{doctor} at {window}"))
                } else {
                    sqlite_error(error)
                }
            })?;
    }
    Ok(())
}

fn write_invitees(connection: &Connection, consultation: &Consultation) -> Result<()> {
    connection
        .execute(
            "DELETE FROM consultation_invitees WHERE consultation_id = ?1",
            [consultation.id.as_str()],
        )
        .map_err(sqlite_error)?;
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO consultation_invitees (consultation_id, user_id, kind, position)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sqlite_error)?;
    for (position, (user, kind)) in ConsultationRow::invitees(consultation).iter().enumerate() {
        statement
            .execute(params![
                consultation.id.as_str(),
                user,
                kind,
                position as i64
            ])
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// Stores the next version of a consultation (version-checked) with its invitees and
/// slot claim, inside the caller's transaction.
fn write_consultation_change(connection: &Connection, consultation: &Consultation) -> Result<()> {
    let row = ConsultationRow::from_consultation(consultation);
    let changed = connection
        .execute(
            "UPDATE consultations SET version = ?2, state = ?3, doctor_id = ?4,
                 consulting_institution_id = ?5, start_us = ?6, end_us = ?7,
                 consent_consenter = ?8, consent_method = ?9,
                 consent_recorded_by = ?10, consent_recorded_at_us = ?11,
                 consent_witness = ?12, state_reason = ?13, accepted_at_us = ?14,
                 escalated_at_us = ?15
             WHERE id = ?1 AND version = ?2 - 1",
            params![
                row.id,
                row.version,
                row.state,
                row.doctor_id,
                row.consulting_institution_id,
                row.start_us,
                row.end_us,
                row.consent_consenter,
                row.consent_method,
                row.consent_recorded_by,
                row.consent_recorded_at_us,
                row.consent_witness,
                row.state_reason,
                row.accepted_at_us,
                row.escalated_at_us
            ],
        )
        .map_err(sqlite_error)?;
    if changed == 0 {
        let exists: bool = connection
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM consultations WHERE id = ?1)",
                [row.id.as_str()],
                |r| r.get(0),
            )
            .map_err(sqlite_error)?;
        return Err(if exists {
            StoreError::Concurrent {
                entity: "consultation",
                id: row.id,
            }
        } else {
            StoreError::not_found("consultation", &row.id)
        });
    }
    write_invitees(connection, consultation)?;
    connection
        .execute(
            "DELETE FROM slot_claims WHERE consultation_id = ?1",
            [consultation.id.as_str()],
        )
        .map_err(sqlite_error)?;
    claim_slot(connection, consultation)?;
    Ok(())
}

fn sorting(column_start: &str) -> String {
    format!("COALESCE({column_start}, created_at_us)")
}

#[async_trait]
impl SchedulingStore for SqliteStore {
    #[instrument(skip_all, fields(doctor = %availability.doctor))]
    async fn set_availability(&self, availability: &Availability, audit: AuditEntry) -> Result<()> {
        let availability = availability.clone();
        self.writer
            .write(move |connection| {
                let doctor = availability.doctor.as_str();
                connection
                    .execute(
                        "INSERT INTO availability (doctor_id, weekly, auto_accept, updated_at_us)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (doctor_id) DO UPDATE SET weekly = excluded.weekly,
                             auto_accept = excluded.auto_accept,
                             updated_at_us = excluded.updated_at_us",
                        params![
                            doctor,
                            rows::encode_weekly(availability.weekly()),
                            availability.auto_accept,
                            micros(audit.at)
                        ],
                    )
                    .map_err(sqlite_error)?;
                connection
                    .execute("DELETE FROM availability_exceptions WHERE doctor_id = ?1", [doctor])
                    .map_err(sqlite_error)?;
                for exception in availability.exceptions() {
                    connection
                        .execute(
                            "INSERT INTO availability_exceptions (doctor_id, start_us, end_us, reason)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![
                                doctor,
                                micros(exception.window.start()),
                                micros(exception.window.end()),
                                exception.reason
                            ],
                        )
                        .map_err(sqlite_error)?;
                }
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    async fn availability(&self, doctor: &UserId) -> Result<Option<Availability>> {
        let doctor = doctor.clone();
        self.read(move |connection| load_availability(connection, &doctor))
            .await
    }

    async fn claimed_quanta(
        &self,
        doctors: &[UserId],
        range: &Window,
    ) -> Result<Vec<(UserId, OffsetDateTime)>> {
        let doctors: Vec<String> = doctors.iter().map(ToString::to_string).collect();
        let (from, to) = (micros(range.start()), micros(range.end()));
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT doctor_id, quantum_start_us FROM slot_claims
                     WHERE doctor_id = ?1 AND quantum_start_us >= ?2 AND quantum_start_us < ?3
                     ORDER BY quantum_start_us",
                )
                .map_err(sqlite_error)?;
            let mut claimed = Vec::new();
            for doctor in &doctors {
                let found = statement
                    .query_map(params![doctor, from, to], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .map_err(sqlite_error)?;
                for row in found {
                    let (doctor, at) = row.map_err(sqlite_error)?;
                    claimed.push((rows::user_id(&doctor)?, rows::instant(at)?));
                }
            }
            Ok(claimed)
        })
        .await
    }

    #[instrument(skip_all, fields(consultation_id = %consultation.id))]
    async fn create_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()> {
        let consultation = consultation.clone();
        self.writer
            .write(move |connection| {
                let row = ConsultationRow::from_consultation(&consultation);
                connection
                    .execute(
                        &format!(
                            "INSERT INTO consultations ({CONSULTATION_COLUMNS}) VALUES
                             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                              ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
                        ),
                        params![
                            row.id,
                            row.version,
                            row.state,
                            row.urgency,
                            row.inviting_institution_id,
                            row.requested_by,
                            row.patient_ref,
                            row.specialty,
                            row.reason,
                            row.case_summary,
                            row.doctor_id,
                            row.consulting_institution_id,
                            row.start_us,
                            row.end_us,
                            row.consent_consenter,
                            row.consent_method,
                            row.consent_recorded_by,
                            row.consent_recorded_at_us,
                            row.consent_witness,
                            row.state_reason,
                            row.created_at_us,
                            row.accepted_at_us,
                            row.escalated_at_us
                        ],
                    )
                    .map_err(|error| {
                        if is_unique_violation(&error) {
                            StoreError::already_exists("consultation", &consultation.id)
                        } else {
                            sqlite_error(error)
                        }
                    })?;
                write_invitees(connection, &consultation)?;
                claim_slot(connection, &consultation)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    #[instrument(skip_all, fields(consultation_id = %consultation.id))]
    async fn update_consultation(
        &self,
        consultation: &Consultation,
        audit: AuditEntry,
    ) -> Result<()> {
        let consultation = consultation.clone();
        self.writer
            .write(move |connection| {
                write_consultation_change(connection, &consultation)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    async fn consultation(&self, id: &ConsultationId) -> Result<Option<Consultation>> {
        let id = id.clone();
        self.read(move |connection| load_consultation(connection, &id))
            .await
    }

    async fn consultations(
        &self,
        scope: &ConsultationScope,
        filter: &ConsultationFilter,
    ) -> Result<Vec<Consultation>> {
        let (scope_sql, a, b, c) = match scope {
            ConsultationScope::All => ("1".to_owned(), None, None, false),
            ConsultationScope::Institution(institution) => (
                "(inviting_institution_id = ?1 OR consulting_institution_id = ?1)".to_owned(),
                Some(institution.to_string()),
                None,
                false,
            ),
            ConsultationScope::Inviting(institution) => (
                "inviting_institution_id = ?1".to_owned(),
                Some(institution.to_string()),
                None,
                false,
            ),
            ConsultationScope::Doctor {
                user,
                specialties,
                on_call,
            } => (
                "(doctor_id = ?1
                  OR EXISTS (SELECT 1 FROM consultation_invitees i
                             WHERE i.consultation_id = consultations.id AND i.user_id = ?1
                               AND i.kind = 'doctor')
                  OR (urgency = 'urgent'
                      AND instr(',' || ?2 || ',', ',' || specialty || ',') > 0
                      AND (state = 'escalated' OR (state = 'requested' AND ?3))))"
                    .to_owned(),
                Some(user.to_string()),
                Some(
                    specialties
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                *on_call,
            ),
            ConsultationScope::Interpreter(user) => (
                "EXISTS (SELECT 1 FROM consultation_invitees i
                         WHERE i.consultation_id = consultations.id AND i.user_id = ?1
                           AND i.kind = 'interpreter')"
                    .to_owned(),
                Some(user.to_string()),
                None,
                false,
            ),
        };
        let states = filter
            .states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let (from, to) = match filter.starting {
            Some(window) => (Some(micros(window.start())), Some(micros(window.end()))),
            None => (None, None),
        };
        let (after_key, after_id) = match &filter.after {
            Some((key, id)) => (Some(*key), Some(id.to_string())),
            None => (None, None),
        };
        let limit = filter.limit.get();
        let key = sorting("start_us");
        let sql = format!(
            "SELECT {CONSULTATION_COLUMNS} FROM consultations
             WHERE {scope_sql}
               AND (?4 = '' OR instr(',' || ?4 || ',', ',' || state || ',') > 0)
               AND (?5 IS NULL OR start_us IS NULL OR (start_us >= ?5 AND start_us < ?6))
               AND (?7 IS NULL OR ({key}, id) > (?7, ?8))
             ORDER BY {key}, id
             LIMIT ?9"
        );
        self.read(move |connection| {
            query_consultations(
                connection,
                &sql,
                params![a, b, c, states, from, to, after_key, after_id, limit],
            )
        })
        .await
    }

    async fn unanswered_urgent(
        &self,
        requested_before: OffsetDateTime,
    ) -> Result<Vec<Consultation>> {
        let before = micros(requested_before);
        self.read(move |connection| {
            query_consultations(
                connection,
                &format!(
                    "SELECT {CONSULTATION_COLUMNS} FROM consultations
                     WHERE state = 'requested' AND urgency = 'urgent' AND created_at_us < ?1
                     ORDER BY created_at_us, id"
                ),
                [before],
            )
        })
        .await
    }

    async fn missed(&self, ended_before: OffsetDateTime) -> Result<Vec<Consultation>> {
        let before = micros(ended_before);
        self.read(move |connection| {
            query_consultations(
                connection,
                &format!(
                    "SELECT {CONSULTATION_COLUMNS} FROM consultations
                     WHERE state = ?1 AND end_us < ?2
                     ORDER BY end_us, id"
                ),
                params![ConsultationState::Scheduled.as_str(), before],
            )
        })
        .await
    }

    async fn opinions(&self, consultation: &ConsultationId) -> Result<Vec<StoredOpinion>> {
        let id = consultation.to_string();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT consultation_id, version, diagnosis_impression, recommendations,
                            follow_up, author_id, supersedes_version, created_at_us,
                            signed_at_us, content_hash, audit_seq
                     FROM opinion_reports WHERE consultation_id = ?1 ORDER BY version",
                )
                .map_err(sqlite_error)?;
            let found = statement
                .query_map([id], |row| {
                    Ok(OpinionRow {
                        consultation_id: row.get(0)?,
                        version: row.get(1)?,
                        diagnosis_impression: row.get(2)?,
                        recommendations: row.get(3)?,
                        follow_up: row.get(4)?,
                        author_id: row.get(5)?,
                        supersedes_version: row.get(6)?,
                        created_at_us: row.get(7)?,
                        signed_at_us: row.get(8)?,
                        content_hash: row.get(9)?,
                        audit_seq: row.get(10)?,
                    })
                })
                .map_err(sqlite_error)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sqlite_error)?;
            found.into_iter().map(OpinionRow::into_opinion).collect()
        })
        .await
    }

    #[instrument(skip_all, fields(consultation_id = %report.consultation))]
    async fn save_opinion_draft(&self, report: &OpinionReport, audit: AuditEntry) -> Result<()> {
        let report = report.clone();
        self.writer
            .write(move |connection| {
                let signed: Option<Option<i64>> = connection
                    .query_row(
                        "SELECT signed_at_us FROM opinion_reports
                         WHERE consultation_id = ?1 AND version = ?2",
                        params![report.consultation.as_str(), report.version],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sqlite_error)?;
                if let Some(Some(_)) = signed {
                    return Err(StoreError::Concurrent {
                        entity: "opinion report",
                        id: format!("{} version {}", report.consultation, report.version),
                    });
                }
                connection
                    .execute(
                        "INSERT INTO opinion_reports (consultation_id, version,
                             diagnosis_impression, recommendations, follow_up, author_id,
                             supersedes_version, created_at_us)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (consultation_id, version) DO UPDATE SET
                             diagnosis_impression = excluded.diagnosis_impression,
                             recommendations = excluded.recommendations,
                             follow_up = excluded.follow_up, author_id = excluded.author_id,
                             created_at_us = excluded.created_at_us",
                        params![
                            report.consultation.as_str(),
                            report.version,
                            report.content.diagnosis_impression.as_str(),
                            report.content.recommendations.as_str(),
                            report.content.follow_up.as_str(),
                            report.author.as_str(),
                            report.supersedes,
                            micros(report.created_at)
                        ],
                    )
                    .map_err(sqlite_error)?;
                append_audit(connection, audit)?;
                Ok(())
            })
            .await
    }

    #[instrument(skip_all, fields(consultation_id = %report.consultation))]
    async fn sign_opinion(
        &self,
        report: &OpinionReport,
        content_hash: &str,
        consultation: Option<&Consultation>,
        audit: AuditEntry,
    ) -> Result<SignedOpinion> {
        let report = report.clone();
        let content_hash = content_hash.to_owned();
        let consultation = consultation.cloned();
        self.writer
            .write(move |connection| {
                let record = append_audit(connection, audit)?;
                let signed_at = report.signed_at.ok_or_else(|| {
                    StoreError::Conflict("the report to store as signed has no signing time".into())
                })?;
                // Only an unsigned draft with exactly this content may be signed.
                let changed = connection
                    .execute(
                        "UPDATE opinion_reports SET signed_at_us = ?3, content_hash = ?4,
                             audit_seq = ?5
                         WHERE consultation_id = ?1 AND version = ?2 AND signed_at_us IS NULL
                           AND diagnosis_impression = ?6 AND recommendations = ?7
                           AND follow_up = ?8",
                        params![
                            report.consultation.as_str(),
                            report.version,
                            micros(signed_at),
                            content_hash,
                            record.seq as i64,
                            report.content.diagnosis_impression.as_str(),
                            report.content.recommendations.as_str(),
                            report.content.follow_up.as_str()
                        ],
                    )
                    .map_err(sqlite_error)?;
                if changed == 0 {
                    return Err(StoreError::Concurrent {
                        entity: "opinion report",
                        id: format!("{} version {}", report.consultation, report.version),
                    });
                }
                if let Some(consultation) = &consultation {
                    write_consultation_change(connection, consultation)?;
                }
                Ok(SignedOpinion {
                    report,
                    content_hash,
                    audit_seq: record.seq,
                })
            })
            .await
    }
}
