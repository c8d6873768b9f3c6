//! Turning stored columns back into domain values, shared by both backends. Stored
//! data that no longer parses is reported as corrupt rather than trusted.

use time::OffsetDateTime;

use super::{Result, StoreError};
use crate::audit::{Actor, AuditEntry, AuditRecord, Outcome};
use crate::domain::directory::{
    Institution, Language, Name, ShortText, SlotMinutes, Specialist, SpecialistProfile, User,
};
use crate::domain::ids::{InstitutionId, Specialty, UserId};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::corrupt(format!("stored {what} {value:?} is invalid"))
}

pub fn institution_id(value: &str) -> Result<InstitutionId> {
    InstitutionId::parse(value).map_err(|_| corrupt("institution id", value))
}

pub fn user_id(value: &str) -> Result<UserId> {
    UserId::parse(value).map_err(|_| corrupt("user id", value))
}

fn name(value: &str) -> Result<Name> {
    Name::parse(value).map_err(|_| corrupt("name", value))
}

pub fn institution(
    id: &str,
    kind: &str,
    name_zh: &str,
    name_en: &str,
    region: &str,
) -> Result<Institution> {
    Institution::new(
        institution_id(id)?,
        kind.parse()
            .map_err(|_| corrupt("institution kind", kind))?,
        name(name_zh)?,
        name(name_en)?,
        ShortText::parse(region).map_err(|_| corrupt("region", region))?,
    )
    .map_err(|_| corrupt("institution", id))
}

pub fn user(
    id: &str,
    institution: &str,
    role: &str,
    display_name_zh: &str,
    display_name_en: &str,
    active: bool,
) -> Result<User> {
    Ok(User {
        id: user_id(id)?,
        institution: institution_id(institution)?,
        role: role.parse().map_err(|_| corrupt("role", role))?,
        display_name_zh: name(display_name_zh)?,
        display_name_en: name(display_name_en)?,
        active,
    })
}

/// The columns of a specialist as both backends select them; specialties and
/// languages arrive as comma-separated lists.
pub struct SpecialistRow {
    pub user_id: String,
    pub institution_id: String,
    pub display_name_zh: String,
    pub display_name_en: String,
    pub title: String,
    pub on_call: bool,
    pub slot_minutes: i64,
    pub specialties: String,
    pub languages: String,
}

impl SpecialistRow {
    pub fn into_specialist(self) -> Result<Specialist> {
        let specialties = split(&self.specialties)
            .map(|s| Specialty::parse(s).map_err(|_| corrupt("specialty", s)))
            .collect::<Result<Vec<_>>>()?;
        let languages = split(&self.languages)
            .map(|l| l.parse::<Language>().map_err(|_| corrupt("language", l)))
            .collect::<Result<Vec<_>>>()?;
        let slot_minutes = u32::try_from(self.slot_minutes)
            .ok()
            .and_then(|m| SlotMinutes::parse(m).ok())
            .ok_or_else(|| corrupt("slot minutes", &self.slot_minutes.to_string()))?;
        let profile = SpecialistProfile::new(
            user_id(&self.user_id)?,
            specialties,
            name(&self.title)?,
            languages,
            self.on_call,
            slot_minutes,
        )
        .map_err(|_| corrupt("specialist profile", &self.user_id))?;
        Ok(Specialist {
            profile,
            institution: institution_id(&self.institution_id)?,
            display_name_zh: name(&self.display_name_zh)?,
            display_name_en: name(&self.display_name_en)?,
        })
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|item| !item.is_empty())
}

/// The columns of an audit record as both backends store them.
pub struct AuditRow {
    pub seq: i64,
    pub at_us: i64,
    pub actor_user: String,
    pub actor_institution: String,
    pub actor_role: String,
    pub actor_fingerprint: String,
    pub action: String,
    pub target: String,
    pub target_institution: Option<String>,
    pub outcome: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    pub fn from_record(record: &AuditRecord) -> Self {
        let entry = &record.entry;
        Self {
            seq: record.seq as i64,
            at_us: micros(entry.at),
            actor_user: entry.actor.user.clone(),
            actor_institution: entry.actor.institution.clone(),
            actor_role: entry.actor.role.clone(),
            actor_fingerprint: entry.actor.certificate_fingerprint.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            target_institution: entry.target_institution.clone(),
            outcome: entry.outcome.as_str().to_owned(),
            details: entry.details.clone(),
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
        }
    }

    /// Rebuilds the record. A stored time or outcome that does not parse can only
    /// come from editing the database; such a record is returned with a hash that
    /// cannot match, so the verifier reports it instead of the read failing.
    pub fn into_record(self) -> AuditRecord {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at_us) * 1_000);
        let outcome = self.outcome.parse::<Outcome>();
        let hash = match (&at, &outcome) {
            (Ok(_), Ok(_)) => self.hash,
            _ => format!("unreadable time or outcome (stored hash {})", self.hash),
        };
        AuditRecord {
            seq: self.seq as u64,
            entry: AuditEntry {
                at: at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                actor: Actor {
                    user: self.actor_user,
                    institution: self.actor_institution,
                    role: self.actor_role,
                    certificate_fingerprint: self.actor_fingerprint,
                },
                action: self.action,
                target: self.target,
                target_institution: self.target_institution,
                outcome: outcome.unwrap_or(Outcome::Error),
                details: self.details,
            },
            prev_hash: self.prev_hash,
            hash,
        }
    }
}

pub fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}
