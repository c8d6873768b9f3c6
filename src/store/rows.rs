//! Turning stored columns back into domain values, shared by both backends. Stored
//! data that no longer parses is reported as corrupt rather than trusted.

use time::OffsetDateTime;

use super::{Result, StoreError, StoredOpinion};
use crate::audit::{Actor, AuditEntry, AuditRecord, Outcome};
use crate::domain::consultation::{
    ClinicalText, ConsentRecord, Consultation, ConsultationId, Invitees, PatientRef,
};
use crate::domain::directory::{
    Institution, Language, Name, ShortText, SlotMinutes, Specialist, SpecialistProfile, User,
};
use crate::domain::ids::{InstitutionId, Specialty, UserId};
use crate::domain::opinion::{OpinionContent, OpinionReport};
use crate::domain::schedule::{Availability, AvailabilityException, WeeklyInterval, Window};

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

/// An instant from stored microseconds.
pub fn instant(micros: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| corrupt("time", &micros.to_string()))
}

fn optional_instant(micros: Option<i64>) -> Result<Option<OffsetDateTime>> {
    micros.map(instant).transpose()
}

/// Weekly intervals as stored: `weekday:start:end` joined by `;`.
pub fn encode_weekly(weekly: &[WeeklyInterval]) -> String {
    weekly
        .iter()
        .map(|i| format!("{}:{}:{}", i.weekday(), i.start_minute(), i.end_minute()))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn availability(
    doctor: &str,
    weekly: &str,
    auto_accept: bool,
    exceptions: Vec<(i64, i64, String)>,
) -> Result<Availability> {
    let intervals = weekly
        .split(';')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let numbers: Option<Vec<u32>> = part.split(':').map(|n| n.parse().ok()).collect();
            match numbers.as_deref().unwrap_or_default() {
                &[day, start, end] => WeeklyInterval::new(day, start, end)
                    .map_err(|_| corrupt("weekly interval", part)),
                _ => Err(corrupt("weekly interval", part)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let exceptions = exceptions
        .into_iter()
        .map(|(start, end, reason)| {
            Ok(AvailabilityException {
                window: Window::new(instant(start)?, instant(end)?)
                    .map_err(|_| corrupt("exception", &reason))?,
                reason,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Availability::new(user_id(doctor)?, intervals, exceptions, auto_accept)
        .map_err(|_| corrupt("availability of", doctor))
}

/// The columns of a consultation as both backends store them.
#[derive(Debug, Clone, Default)]
pub struct ConsultationRow {
    pub id: String,
    pub version: i64,
    pub state: String,
    pub urgency: String,
    pub inviting_institution_id: String,
    pub requested_by: String,
    pub patient_ref: String,
    pub specialty: String,
    pub reason: String,
    pub case_summary: String,
    pub doctor_id: Option<String>,
    pub consulting_institution_id: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub consent_consenter: Option<String>,
    pub consent_method: Option<String>,
    pub consent_recorded_by: Option<String>,
    pub consent_recorded_at_us: Option<i64>,
    pub consent_witness: Option<String>,
    pub state_reason: String,
    pub created_at_us: i64,
    pub accepted_at_us: Option<i64>,
    pub escalated_at_us: Option<i64>,
}

/// A consultation's invitees as stored: `(user, kind)` in invitation order.
pub type InviteeRow = (String, String);

impl ConsultationRow {
    pub fn from_consultation(c: &Consultation) -> Self {
        let consent = c.consent.as_ref();
        Self {
            id: c.id.to_string(),
            version: c.version as i64,
            state: c.state.as_str().to_owned(),
            urgency: c.urgency.as_str().to_owned(),
            inviting_institution_id: c.inviting_institution.to_string(),
            requested_by: c.requested_by.to_string(),
            patient_ref: c.patient.as_str().to_owned(),
            specialty: c.specialty.to_string(),
            reason: c.reason.as_str().to_owned(),
            case_summary: c.case_summary.as_str().to_owned(),
            doctor_id: c.doctor.as_ref().map(ToString::to_string),
            consulting_institution_id: c.consulting_institution.as_ref().map(ToString::to_string),
            start_us: c.window.map(|w| micros(w.start())),
            end_us: c.window.map(|w| micros(w.end())),
            consent_consenter: consent.map(|r| r.consenter.as_str().to_owned()),
            consent_method: consent.map(|r| r.method.as_str().to_owned()),
            consent_recorded_by: consent.map(|r| r.recorded_by.to_string()),
            consent_recorded_at_us: consent.map(|r| micros(r.recorded_at)),
            consent_witness: consent.map(|r| r.witness.clone()),
            state_reason: c.state_reason.clone(),
            created_at_us: micros(c.created_at),
            accepted_at_us: c.accepted_at.map(micros),
            escalated_at_us: c.escalated_at.map(micros),
        }
    }

    /// Invitees in the order they were invited.
    pub fn invitees(c: &Consultation) -> Vec<InviteeRow> {
        c.invitees
            .interpreters
            .iter()
            .map(|u| (u.to_string(), "interpreter".to_owned()))
            .chain(
                c.invitees
                    .additional_doctors
                    .iter()
                    .map(|u| (u.to_string(), "doctor".to_owned())),
            )
            .collect()
    }

    pub fn into_consultation(self, invitees: Vec<InviteeRow>) -> Result<Consultation> {
        let text = |value: &str, what: &str| {
            ClinicalText::optional(value, 100_000).map_err(|_| corrupt(what, &self.id))
        };
        let window = match (self.start_us, self.end_us) {
            (Some(start), Some(end)) => Some(
                Window::new(instant(start)?, instant(end)?)
                    .map_err(|_| corrupt("window of", &self.id))?,
            ),
            (None, None) => None,
            _ => return Err(corrupt("window of", &self.id)),
        };
        let consent = match (
            &self.consent_consenter,
            &self.consent_method,
            &self.consent_recorded_by,
            self.consent_recorded_at_us,
        ) {
            (Some(consenter), Some(method), Some(by), Some(at)) => Some(ConsentRecord {
                consenter: consenter
                    .parse()
                    .map_err(|_| corrupt("consenter", consenter))?,
                method: method
                    .parse()
                    .map_err(|_| corrupt("consent method", method))?,
                recorded_by: user_id(by)?,
                recorded_at: instant(at)?,
                witness: self.consent_witness.clone().unwrap_or_default(),
            }),
            (None, None, None, None) => None,
            _ => return Err(corrupt("consent of", &self.id)),
        };
        let mut people = Invitees::default();
        for (user, kind) in invitees {
            let user = user_id(&user)?;
            match kind.as_str() {
                "interpreter" => people.interpreters.push(user),
                "doctor" => people.additional_doctors.push(user),
                other => return Err(corrupt("invitee kind", other)),
            }
        }
        Ok(Consultation {
            id: ConsultationId::parse(&self.id)
                .map_err(|_| corrupt("consultation id", &self.id))?,
            state: self
                .state
                .parse()
                .map_err(|_| corrupt("state", &self.state))?,
            urgency: self
                .urgency
                .parse()
                .map_err(|_| corrupt("urgency", &self.urgency))?,
            inviting_institution: institution_id(&self.inviting_institution_id)?,
            requested_by: user_id(&self.requested_by)?,
            patient: PatientRef::parse(&self.patient_ref)
                .map_err(|_| corrupt("patient reference of", &self.id))?,
            specialty: Specialty::parse(&self.specialty)
                .map_err(|_| corrupt("specialty", &self.specialty))?,
            reason: text(&self.reason, "reason of")?,
            case_summary: text(&self.case_summary, "case summary of")?,
            doctor: self.doctor_id.as_deref().map(user_id).transpose()?,
            consulting_institution: self
                .consulting_institution_id
                .as_deref()
                .map(institution_id)
                .transpose()?,
            window,
            consent,
            invitees: people,
            state_reason: self.state_reason.clone(),
            created_at: instant(self.created_at_us)?,
            accepted_at: optional_instant(self.accepted_at_us)?,
            escalated_at: optional_instant(self.escalated_at_us)?,
            version: u64::try_from(self.version).map_err(|_| corrupt("version of", &self.id))?,
        })
    }
}

/// The columns of an opinion report as both backends store them.
#[derive(Debug, Clone)]
pub struct OpinionRow {
    pub consultation_id: String,
    pub version: i64,
    pub diagnosis_impression: String,
    pub recommendations: String,
    pub follow_up: String,
    pub author_id: String,
    pub supersedes_version: Option<i64>,
    pub created_at_us: i64,
    pub signed_at_us: Option<i64>,
    pub content_hash: Option<String>,
    pub audit_seq: Option<i64>,
}

impl OpinionRow {
    pub fn into_opinion(self) -> Result<StoredOpinion> {
        let content = OpinionContent::new(
            &self.diagnosis_impression,
            &self.recommendations,
            &self.follow_up,
        )
        .map_err(|_| corrupt("opinion of", &self.consultation_id))?;
        let version =
            |v: i64| u32::try_from(v).map_err(|_| corrupt("opinion version", &v.to_string()));
        let seal = match (self.content_hash, self.audit_seq) {
            (Some(hash), Some(seq)) => Some((hash, seq as u64)),
            (None, None) => None,
            _ => return Err(corrupt("opinion seal of", &self.consultation_id)),
        };
        Ok(StoredOpinion {
            report: OpinionReport {
                consultation: ConsultationId::parse(&self.consultation_id)
                    .map_err(|_| corrupt("consultation id", &self.consultation_id))?,
                version: version(self.version)?,
                content,
                author: user_id(&self.author_id)?,
                supersedes: self.supersedes_version.map(version).transpose()?,
                created_at: instant(self.created_at_us)?,
                signed_at: optional_instant(self.signed_at_us)?,
            },
            seal,
        })
    }
}
