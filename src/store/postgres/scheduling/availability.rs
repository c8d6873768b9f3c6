//! Doctors' availability and the slot quanta their bookings claim, in PostgreSQL.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::super::error::postgres_error;
use super::super::query::{self, column};
use crate::domain::ids::UserId;
use crate::domain::schedule::{Availability, Window};
use crate::store::Result;
use crate::store::rows::{self, micros};

/// Replaces the doctor's weekly hours and exceptions.
pub async fn write(
    client: &impl GenericClient,
    availability: &Availability,
    updated_at: OffsetDateTime,
) -> Result<()> {
    let doctor = availability.doctor.as_str();
    query::execute(
        client,
        "INSERT INTO availability (doctor_id, weekly, auto_accept, updated_at_us)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (doctor_id) DO UPDATE SET weekly = EXCLUDED.weekly,
             auto_accept = EXCLUDED.auto_accept, updated_at_us = EXCLUDED.updated_at_us",
        &[
            &doctor,
            &rows::encode_weekly(availability.weekly()),
            &availability.auto_accept,
            &micros(updated_at),
        ],
    )
    .await
    .map_err(postgres_error)?;
    query::execute(
        client,
        "DELETE FROM availability_exceptions WHERE doctor_id = $1",
        &[&doctor],
    )
    .await
    .map_err(postgres_error)?;
    let exceptions = availability.exceptions();
    let starts: Vec<i64> = exceptions
        .iter()
        .map(|e| micros(e.window.start()))
        .collect();
    let ends: Vec<i64> = exceptions.iter().map(|e| micros(e.window.end())).collect();
    let reasons: Vec<&str> = exceptions.iter().map(|e| e.reason.as_str()).collect();
    query::execute(
        client,
        "INSERT INTO availability_exceptions (doctor_id, start_us, end_us, reason)
         SELECT $1, x.start_us, x.end_us, x.reason
         FROM unnest($2::BIGINT[], $3::BIGINT[], $4::TEXT[]) AS x(start_us, end_us, reason)",
        &[&doctor, &starts, &ends, &reasons],
    )
    .await
    .map_err(postgres_error)?;
    Ok(())
}

/// The doctor's availability, read in one statement so that a concurrent replacement
/// is seen whole or not at all.
pub async fn load(client: &impl GenericClient, doctor: &UserId) -> Result<Option<Availability>> {
    let found = query::rows(
        client,
        "SELECT a.weekly, a.auto_accept, e.start_us, e.end_us, e.reason
         FROM availability a
         LEFT JOIN availability_exceptions e ON e.doctor_id = a.doctor_id
         WHERE a.doctor_id = $1
         ORDER BY e.start_us",
        &[&doctor.as_str()],
    )
    .await
    .map_err(postgres_error)?;
    let Some(first) = found.first() else {
        return Ok(None);
    };
    let weekly: String = column(first, 0)?;
    let auto_accept: bool = column(first, 1)?;
    let mut exceptions = Vec::new();
    for row in &found {
        let start: Option<i64> = column(row, 2)?;
        let end: Option<i64> = column(row, 3)?;
        let reason: Option<String> = column(row, 4)?;
        if let (Some(start), Some(end), Some(reason)) = (start, end, reason) {
            exceptions.push((start, end, reason));
        }
    }
    rows::availability(doctor.as_str(), &weekly, auto_accept, exceptions).map(Some)
}

/// The claimed quanta of each doctor within `range`, doctor by doctor in the order
/// given, each doctor's earliest first.
pub async fn claimed_quanta(
    client: &impl GenericClient,
    doctors: &[UserId],
    range: &Window,
) -> Result<Vec<(UserId, OffsetDateTime)>> {
    let doctors: Vec<&str> = doctors.iter().map(UserId::as_str).collect();
    query::rows(
        client,
        "SELECT s.doctor_id, s.quantum_start_us
         FROM unnest($1::TEXT[]) WITH ORDINALITY AS d(doctor_id, n)
         JOIN slot_claims s ON s.doctor_id = d.doctor_id
         WHERE s.quantum_start_us >= $2 AND s.quantum_start_us < $3
         ORDER BY d.n, s.quantum_start_us",
        &[&doctors, &micros(range.start()), &micros(range.end())],
    )
    .await
    .map_err(postgres_error)?
    .iter()
    .map(|row| {
        let doctor: &str = column(row, 0)?;
        Ok((rows::user_id(doctor)?, rows::instant(column(row, 1)?)?))
    })
    .collect()
}
