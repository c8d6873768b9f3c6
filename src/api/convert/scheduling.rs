//! Scheduling messages to domain values and back.

use prost_types::Timestamp;
use time::{Duration, OffsetDateTime};

use super::{Result, language_from_proto, timestamp, user_id};
use crate::audit::{AuditRecord, Outcome};
use crate::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, Consenter, Consultation, ConsultationId,
    ConsultationState, PatientRef, Urgency, UrgentRequest, reason,
};
use crate::domain::directory::{Language, PageSize};
use crate::domain::ids::{InstitutionId, Specialty, UserId};
use crate::domain::opinion::OpinionContent;
use crate::domain::schedule::{Availability, AvailabilityException, WeeklyInterval, Window};
use crate::domain::{InvalidField, field};
use crate::events::{Notice, NoticeKind};
use crate::proto::v1 as pb;
use crate::store::{ConsultationFilter, StoredOpinion};

pub const MAX_REASON: usize = 2_000;
pub const MAX_CASE_SUMMARY: usize = 8_000;

pub fn instant(value: &Timestamp, name: &str) -> Result<OffsetDateTime> {
    let nanos = i128::from(value.seconds) * 1_000_000_000 + i128::from(value.nanos);
    if !(0..1_000_000_000).contains(&value.nanos) {
        return Err(InvalidField::new(name, "nanos must be 0 to 999999999"));
    }
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|_| InvalidField::new(name, "is out of range"))
}

fn optional_instant(value: Option<&Timestamp>, name: &str) -> Result<Option<OffsetDateTime>> {
    value.map(|v| instant(v, name)).transpose()
}

fn required_instant(value: Option<&Timestamp>, name: &str) -> Result<OffsetDateTime> {
    optional_instant(value, name)?.ok_or_else(|| InvalidField::new(name, "must be set"))
}

pub fn consultation_id(value: &str, name: &str) -> Result<ConsultationId> {
    ConsultationId::parse(value).map_err(field(name))
}

fn specialty(value: &str, name: &str) -> Result<Specialty> {
    Specialty::parse(value).map_err(field(name))
}

/// A slot as the client names it: the doctor and the window.
pub fn slot(slot: Option<&pb::Slot>, name: &str) -> Result<(UserId, Window)> {
    let slot = slot.ok_or_else(|| InvalidField::new(name, "must be set"))?;
    let doctor = user_id(&slot.doctor_id, &format!("{name}.doctor_id"))?;
    let start = required_instant(slot.start.as_ref(), &format!("{name}.start"))?;
    let end = required_instant(slot.end.as_ref(), &format!("{name}.end"))?;
    let window = Window::new(start, end).map_err(field(&format!("{name}.end")))?;
    Ok((doctor, window))
}

pub fn slot_to_proto(doctor: &UserId, institution: &InstitutionId, window: &Window) -> pb::Slot {
    pb::Slot {
        doctor_id: doctor.to_string(),
        institution_id: institution.to_string(),
        start: Some(timestamp(window.start())),
        end: Some(timestamp(window.end())),
    }
}

impl TryFrom<pb::SetAvailabilityRequest> for Availability {
    type Error = InvalidField;

    fn try_from(request: pb::SetAvailabilityRequest) -> Result<Self> {
        let availability = request
            .availability
            .ok_or_else(|| InvalidField::new("availability", "must be set"))?;
        let doctor = user_id(&availability.doctor_id, "availability.doctor_id")?;
        let weekly = availability
            .weekly
            .iter()
            .enumerate()
            .map(|(i, interval)| {
                WeeklyInterval::new(interval.weekday, interval.start_minute, interval.end_minute)
                    .map_err(field(&format!("availability.weekly[{i}]")))
            })
            .collect::<Result<Vec<_>>>()?;
        let exceptions = availability
            .exceptions
            .iter()
            .enumerate()
            .map(|(i, exception)| {
                let name = format!("availability.exceptions[{i}]");
                let start = required_instant(exception.start.as_ref(), &format!("{name}.start"))?;
                let end = required_instant(exception.end.as_ref(), &format!("{name}.end"))?;
                Ok(AvailabilityException {
                    window: Window::new(start, end).map_err(field(&format!("{name}.end")))?,
                    reason: crate::domain::text(&exception.reason, 200, true)
                        .map_err(field(&format!("{name}.reason")))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Availability::new(doctor, weekly, exceptions, availability.auto_accept)
            .map_err(|(which, problem)| InvalidField::new(format!("availability.{which}"), problem))
    }
}

impl From<&Availability> for pb::Availability {
    fn from(availability: &Availability) -> Self {
        Self {
            doctor_id: availability.doctor.to_string(),
            weekly: availability
                .weekly()
                .iter()
                .map(|i| pb::WeeklyInterval {
                    weekday: i.weekday(),
                    start_minute: i.start_minute(),
                    end_minute: i.end_minute(),
                })
                .collect(),
            exceptions: availability
                .exceptions()
                .iter()
                .map(|e| pb::AvailabilityException {
                    start: Some(timestamp(e.window.start())),
                    end: Some(timestamp(e.window.end())),
                    reason: e.reason.clone(),
                })
                .collect(),
            auto_accept: availability.auto_accept,
        }
    }
}

/// A slot search, checked: its range defaults to the week from `now` and may span at
/// most 31 days.
#[derive(Debug, Clone)]
pub struct SlotSearch {
    pub specialty: Option<Specialty>,
    pub institution: Option<InstitutionId>,
    pub language: Option<Language>,
    pub doctor: Option<UserId>,
    pub range: Window,
    /// Continue after this slot: `(start, doctor)`.
    pub after: Option<(OffsetDateTime, UserId)>,
    pub limit: PageSize,
}

pub const MAX_SEARCH_DAYS: i64 = 31;

impl SlotSearch {
    pub fn parse(request: pb::SearchSlotsRequest, now: OffsetDateTime) -> Result<Self> {
        let from = optional_instant(request.from.as_ref(), "from")?
            .unwrap_or(now)
            .max(now);
        let to = optional_instant(request.to.as_ref(), "to")?.unwrap_or(from + Duration::days(7));
        let range = Window::new(from, to).map_err(field("to"))?;
        if range.duration() > Duration::days(MAX_SEARCH_DAYS) {
            return Err(InvalidField::new(
                "to",
                format!("the range may span at most {MAX_SEARCH_DAYS} days"),
            ));
        }
        let page = request.page.unwrap_or_default();
        Ok(Self {
            specialty: super::optional(&request.specialty, |v| specialty(v, "specialty"))?,
            institution: super::optional(&request.institution_id, |v| {
                super::institution_id(v, "institution_id")
            })?,
            language: language_from_proto(request.language, "language")?,
            doctor: super::optional(&request.doctor_id, |v| user_id(v, "doctor_id"))?,
            range,
            after: super::optional(&page.page_token, slot_token)?,
            limit: PageSize::new(page.page_size),
        })
    }
}

/// Page tokens for slots: `<start unix seconds>.<doctor id>`.
pub fn slot_page_token(start: OffsetDateTime, doctor: &UserId) -> String {
    format!("{}.{doctor}", start.unix_timestamp())
}

fn slot_token(value: &str) -> Result<(OffsetDateTime, UserId)> {
    let invalid = || InvalidField::new("page.page_token", "is not a token this server gave");
    let (seconds, doctor) = value.split_once('.').ok_or_else(invalid)?;
    let seconds: i64 = seconds.parse().map_err(|_| invalid())?;
    let start = OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid())?;
    Ok((start, UserId::parse(doctor).map_err(|_| invalid())?))
}

fn clinical(value: &str, max: usize, required: bool, name: &str) -> Result<ClinicalText> {
    if required {
        ClinicalText::required(value, max).map_err(field(name))
    } else {
        ClinicalText::optional(value, max).map_err(field(name))
    }
}

impl TryFrom<pb::BookConsultationRequest> for BookingRequest {
    type Error = InvalidField;

    fn try_from(request: pb::BookConsultationRequest) -> Result<Self> {
        let (doctor, window) = slot(request.slot.as_ref(), "slot")?;
        Ok(BookingRequest {
            doctor,
            window,
            patient: PatientRef::parse(&request.patient_ref).map_err(field("patient_ref"))?,
            specialty: specialty(&request.specialty, "specialty")?,
            reason: clinical(&request.reason, MAX_REASON, true, "reason")?,
            case_summary: clinical(
                &request.case_summary,
                MAX_CASE_SUMMARY,
                false,
                "case_summary",
            )?,
        })
    }
}

impl TryFrom<pb::RequestUrgentConsultationRequest> for UrgentRequest {
    type Error = InvalidField;

    fn try_from(request: pb::RequestUrgentConsultationRequest) -> Result<Self> {
        Ok(UrgentRequest {
            specialty: specialty(&request.specialty, "specialty")?,
            patient: PatientRef::parse(&request.patient_ref).map_err(field("patient_ref"))?,
            reason: clinical(&request.reason, MAX_REASON, true, "reason")?,
            case_summary: clinical(
                &request.case_summary,
                MAX_CASE_SUMMARY,
                false,
                "case_summary",
            )?,
        })
    }
}

pub fn state_reason(value: &str, name: &str) -> Result<String> {
    reason(value).map_err(field(name))
}

/// The consenter, method and witness of a consent record; who recorded it and when
/// come from the call itself.
pub fn consent(consent: Option<&pb::ConsentRecord>) -> Result<(Consenter, ConsentMethod, String)> {
    use pb::consent_record::{Consenter as PbConsenter, Method as PbMethod};
    let consent = consent.ok_or_else(|| InvalidField::new("consent", "must be set"))?;
    let consenter = match PbConsenter::try_from(consent.consenter) {
        Ok(PbConsenter::Patient) => Consenter::Patient,
        Ok(PbConsenter::Guardian) => Consenter::Guardian,
        Ok(PbConsenter::Relative) => Consenter::Relative,
        _ => {
            return Err(InvalidField::new(
                "consent.consenter",
                "must be PATIENT, GUARDIAN or RELATIVE",
            ));
        }
    };
    let method = match PbMethod::try_from(consent.method) {
        Ok(PbMethod::Written) => ConsentMethod::Written,
        Ok(PbMethod::VerbalWitnessed) => ConsentMethod::VerbalWitnessed,
        _ => {
            return Err(InvalidField::new(
                "consent.method",
                "must be WRITTEN or VERBAL_WITNESSED",
            ));
        }
    };
    Ok((consenter, method, consent.witness.clone()))
}

pub fn state_from_proto(value: i32, name: &str) -> Result<ConsultationState> {
    use pb::ConsultationState as S;
    Ok(match S::try_from(value) {
        Ok(S::Requested) => ConsultationState::Requested,
        Ok(S::Scheduled) => ConsultationState::Scheduled,
        Ok(S::InSession) => ConsultationState::InSession,
        Ok(S::AwaitingReport) => ConsultationState::AwaitingReport,
        Ok(S::Completed) => ConsultationState::Completed,
        Ok(S::Declined) => ConsultationState::Declined,
        Ok(S::Cancelled) => ConsultationState::Cancelled,
        Ok(S::NoShow) => ConsultationState::NoShow,
        Ok(S::Escalated) => ConsultationState::Escalated,
        Ok(S::Unspecified) | Err(_) => {
            return Err(InvalidField::new(
                name,
                format!("unknown consultation state {value}"),
            ));
        }
    })
}

pub fn state_to_proto(state: ConsultationState) -> pb::ConsultationState {
    use pb::ConsultationState as S;
    match state {
        ConsultationState::Requested => S::Requested,
        ConsultationState::Scheduled => S::Scheduled,
        ConsultationState::InSession => S::InSession,
        ConsultationState::AwaitingReport => S::AwaitingReport,
        ConsultationState::Completed => S::Completed,
        ConsultationState::Declined => S::Declined,
        ConsultationState::Cancelled => S::Cancelled,
        ConsultationState::NoShow => S::NoShow,
        ConsultationState::Escalated => S::Escalated,
    }
}

/// Page tokens for consultations: `<sort key µs>.<consultation id>`.
pub fn consultation_page_token(key: i64, id: &ConsultationId) -> String {
    format!("{key}.{id}")
}

impl TryFrom<pb::ListConsultationsRequest> for ConsultationFilter {
    type Error = InvalidField;

    fn try_from(request: pb::ListConsultationsRequest) -> Result<Self> {
        let states = request
            .states
            .iter()
            .enumerate()
            .map(|(i, &s)| state_from_proto(s, &format!("states[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let from = optional_instant(request.from.as_ref(), "from")?;
        let to = optional_instant(request.to.as_ref(), "to")?;
        let starting = match (from, to) {
            (None, None) => None,
            (from, to) => Some(
                Window::new(
                    from.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    to.unwrap_or(datetime_max()),
                )
                .map_err(field("to"))?,
            ),
        };
        let page = request.page.unwrap_or_default();
        let after = super::optional(&page.page_token, |token| {
            let invalid =
                || InvalidField::new("page.page_token", "is not a token this server gave");
            let (key, id) = token.split_once('.').ok_or_else(invalid)?;
            Ok((
                key.parse().map_err(|_| invalid())?,
                ConsultationId::parse(id).map_err(|_| invalid())?,
            ))
        })?;
        Ok(ConsultationFilter {
            states,
            starting,
            after,
            limit: PageSize::new(page.page_size),
        })
    }
}

fn datetime_max() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("year 9999 is in range")
}

impl From<&Consultation> for pb::Consultation {
    fn from(c: &Consultation) -> Self {
        use pb::consent_record::{Consenter as PbConsenter, Method as PbMethod};
        let seconds_to_accept = match (c.urgency, c.accepted_at) {
            (Urgency::Urgent, Some(accepted)) => (accepted - c.created_at).whole_seconds(),
            _ => 0,
        };
        Self {
            id: c.id.to_string(),
            state: state_to_proto(c.state) as i32,
            urgency: match c.urgency {
                Urgency::Routine => pb::Urgency::Routine,
                Urgency::Urgent => pb::Urgency::Urgent,
            } as i32,
            inviting_institution_id: c.inviting_institution.to_string(),
            requested_by: c.requested_by.to_string(),
            patient_ref: c.patient.as_str().to_owned(),
            specialty: c.specialty.to_string(),
            reason: c.reason.as_str().to_owned(),
            case_summary: c.case_summary.as_str().to_owned(),
            doctor_id: c
                .doctor
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            consulting_institution_id: c
                .consulting_institution
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            start: c.window.map(|w| timestamp(w.start())),
            end: c.window.map(|w| timestamp(w.end())),
            consent: c.consent.as_ref().map(|r| pb::ConsentRecord {
                consenter: match r.consenter {
                    Consenter::Patient => PbConsenter::Patient,
                    Consenter::Guardian => PbConsenter::Guardian,
                    Consenter::Relative => PbConsenter::Relative,
                } as i32,
                method: match r.method {
                    ConsentMethod::Written => PbMethod::Written,
                    ConsentMethod::VerbalWitnessed => PbMethod::VerbalWitnessed,
                } as i32,
                recorded_by: r.recorded_by.to_string(),
                recorded_at: Some(timestamp(r.recorded_at)),
                witness: r.witness.clone(),
            }),
            interpreter_ids: c
                .invitees
                .interpreters
                .iter()
                .map(ToString::to_string)
                .collect(),
            additional_doctor_ids: c
                .invitees
                .additional_doctors
                .iter()
                .map(ToString::to_string)
                .collect(),
            state_reason: c.state_reason.clone(),
            created_at: Some(timestamp(c.created_at)),
            accepted_at: c.accepted_at.map(timestamp),
            escalated_at: c.escalated_at.map(timestamp),
            version: c.version,
            seconds_to_accept,
        }
    }
}

impl TryFrom<&pb::FileOpinionRequest> for OpinionContent {
    type Error = InvalidField;

    fn try_from(request: &pb::FileOpinionRequest) -> Result<Self> {
        OpinionContent::new(
            &request.diagnosis_impression,
            &request.recommendations,
            &request.follow_up,
        )
        .map_err(|(which, problem)| InvalidField::new(which, problem))
    }
}

pub fn opinion_to_proto(opinion: &StoredOpinion, seal: Option<&AuditRecord>) -> pb::OpinionReport {
    let report = &opinion.report;
    pb::OpinionReport {
        consultation_id: report.consultation.to_string(),
        version: report.version,
        diagnosis_impression: report.content.diagnosis_impression.as_str().to_owned(),
        recommendations: report.content.recommendations.as_str().to_owned(),
        follow_up: report.content.follow_up.as_str().to_owned(),
        author_id: report.author.to_string(),
        signed: report.signed_at.is_some(),
        signed_at: report.signed_at.map(timestamp),
        content_hash: opinion
            .seal
            .as_ref()
            .map(|(hash, _)| hash.clone())
            .unwrap_or_default(),
        supersedes_version: report.supersedes.unwrap_or(0),
        created_at: Some(timestamp(report.created_at)),
        seal: seal.map(audit_record_to_proto),
    }
}

pub fn audit_record_to_proto(record: &AuditRecord) -> pb::AuditRecord {
    let entry = &record.entry;
    pb::AuditRecord {
        seq: record.seq,
        at: Some(timestamp(entry.at)),
        actor_user_id: entry.actor.user.clone(),
        actor_institution_id: entry.actor.institution.clone(),
        actor_role: entry.actor.role.clone(),
        actor_certificate_fingerprint: entry.actor.certificate_fingerprint.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        target_institution_id: entry.target_institution.clone().unwrap_or_default(),
        outcome: match entry.outcome {
            Outcome::Ok => pb::Outcome::Ok,
            Outcome::Denied => pb::Outcome::Denied,
            Outcome::Invalid => pb::Outcome::Invalid,
            Outcome::Error => pb::Outcome::Error,
        } as i32,
        details: entry.details.clone(),
        prev_hash: record.prev_hash.clone(),
        hash: record.hash.clone(),
    }
}

pub fn notice_to_proto(notice: &Notice) -> pb::ConsultationEvent {
    use pb::consultation_event::Kind;
    pb::ConsultationEvent {
        kind: match notice.kind {
            NoticeKind::Created => Kind::Created,
            NoticeKind::Changed => Kind::Changed,
            NoticeKind::UrgentRequest => Kind::UrgentRequest,
            NoticeKind::PatientWaiting => Kind::PatientWaiting,
            NoticeKind::Escalated => Kind::Escalated,
        } as i32,
        consultation: Some((&notice.consultation).into()),
        at: Some(timestamp(notice.at)),
    }
}
