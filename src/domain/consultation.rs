//! A consultation and its lifecycle:
//!
//! ```text
//! REQUESTED ──accept──> SCHEDULED ──first join──> IN_SESSION ──end──> AWAITING_REPORT ──signed──> COMPLETED
//!     │                     │
//!     ├─decline─> DECLINED  ├─cancel─> CANCELLED
//!     ├─cancel──> CANCELLED └─nobody joined by the end─> NO_SHOW
//!     └─urgent, unanswered─> ESCALATED ──accept──> SCHEDULED
//! ```
//!
//! Every change is a pure function from a consultation and an event to a new
//! consultation, or an error naming the state that forbids it.

use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime};

use super::directory::SlotMinutes;
use super::ids::{InstitutionId, Specialty, UserId};
use super::schedule::Window;
use super::{InvalidValue, text};

/// `c-` and 20 lowercase hex digits, e.g. `c-3f9a0c1d2e4b5a6978f0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsultationId(String);

impl ConsultationId {
    /// An id from 10 random bytes (the caller supplies the randomness).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut id = String::with_capacity(22);
        id.push_str("c-");
        for byte in bytes {
            id.push_str(&format!("{byte:02x}"));
        }
        Self(id)
    }

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let valid = value.len() == 22
            && value.starts_with("c-")
            && value[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidValue::new(
                "must be a consultation id: c- and 20 lowercase hex digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsultationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The clinic's pseudonymous reference for a patient. The broker never holds a name:
/// the reference is 3 to 64 ASCII letters, digits, '-', '_' or '.', so that a name
/// (with spaces or Chinese/Tibetan script) cannot be entered by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatientRef(String);

impl PatientRef {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let valid = (3..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidValue::new(
                "must be the clinic's pseudonymous reference: 3 to 64 ASCII letters, digits, '-', '_' or '.', never a name",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Clinical free text (reason, case summary, opinion sections).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClinicalText(String);

impl ClinicalText {
    pub fn required(value: &str, max: usize) -> Result<Self, InvalidValue> {
        text(value, max, false).map(Self)
    }

    pub fn optional(value: &str, max: usize) -> Result<Self, InvalidValue> {
        text(value, max, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a consultation was declined or cancelled: 1 to 500 characters.
pub fn reason(value: &str) -> Result<String, InvalidValue> {
    text(value, 500, false)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    Routine,
    Urgent,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
        }
    }
}

impl FromStr for Urgency {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "routine" => Ok(Urgency::Routine),
            "urgent" => Ok(Urgency::Urgent),
            other => Err(InvalidValue(format!("unknown urgency {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsultationState {
    Requested,
    Scheduled,
    InSession,
    AwaitingReport,
    Completed,
    Declined,
    Cancelled,
    NoShow,
    Escalated,
}

impl ConsultationState {
    pub const ALL: [ConsultationState; 9] = [
        ConsultationState::Requested,
        ConsultationState::Scheduled,
        ConsultationState::InSession,
        ConsultationState::AwaitingReport,
        ConsultationState::Completed,
        ConsultationState::Declined,
        ConsultationState::Cancelled,
        ConsultationState::NoShow,
        ConsultationState::Escalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsultationState::Requested => "requested",
            ConsultationState::Scheduled => "scheduled",
            ConsultationState::InSession => "in_session",
            ConsultationState::AwaitingReport => "awaiting_report",
            ConsultationState::Completed => "completed",
            ConsultationState::Declined => "declined",
            ConsultationState::Cancelled => "cancelled",
            ConsultationState::NoShow => "no_show",
            ConsultationState::Escalated => "escalated",
        }
    }

    /// No event leads out of a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ConsultationState::Completed
                | ConsultationState::Declined
                | ConsultationState::Cancelled
                | ConsultationState::NoShow
        )
    }

    /// Waiting for a doctor to accept.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            ConsultationState::Requested | ConsultationState::Escalated
        )
    }
}

impl FromStr for ConsultationState {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        ConsultationState::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| InvalidValue(format!("unknown consultation state {value:?}")))
    }
}

impl fmt::Display for ConsultationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consenter {
    Patient,
    Guardian,
    Relative,
}

impl Consenter {
    pub fn as_str(self) -> &'static str {
        match self {
            Consenter::Patient => "patient",
            Consenter::Guardian => "guardian",
            Consenter::Relative => "relative",
        }
    }
}

impl FromStr for Consenter {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "patient" => Ok(Consenter::Patient),
            "guardian" => Ok(Consenter::Guardian),
            "relative" => Ok(Consenter::Relative),
            other => Err(InvalidValue(format!("unknown consenter {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentMethod {
    Written,
    VerbalWitnessed,
}

impl ConsentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::Written => "written",
            ConsentMethod::VerbalWitnessed => "verbal_witnessed",
        }
    }
}

impl FromStr for ConsentMethod {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "written" => Ok(ConsentMethod::Written),
            "verbal_witnessed" => Ok(ConsentMethod::VerbalWitnessed),
            other => Err(InvalidValue(format!("unknown consent method {other:?}"))),
        }
    }
}

/// The patient's informed consent to the teleconsultation, as the clinic recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub consenter: Consenter,
    pub method: ConsentMethod,
    pub recorded_by: UserId,
    pub recorded_at: OffsetDateTime,
    /// Who witnessed verbal consent; required for that method.
    pub witness: String,
}

impl ConsentRecord {
    pub fn new(
        consenter: Consenter,
        method: ConsentMethod,
        recorded_by: UserId,
        recorded_at: OffsetDateTime,
        witness: &str,
    ) -> Result<Self, (&'static str, InvalidValue)> {
        let witness = text(witness, 200, true).map_err(|e| ("witness", e))?;
        if method == ConsentMethod::VerbalWitnessed && witness.is_empty() {
            return Err((
                "witness",
                InvalidValue::new("verbal consent needs the witness's name"),
            ));
        }
        Ok(Self {
            consenter,
            method,
            recorded_by,
            recorded_at,
            witness,
        })
    }
}

/// Who may take part in a consultation besides the clinic side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invitees {
    pub interpreters: Vec<UserId>,
    pub additional_doctors: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    pub id: ConsultationId,
    pub state: ConsultationState,
    pub urgency: Urgency,
    pub inviting_institution: InstitutionId,
    pub requested_by: UserId,
    pub patient: PatientRef,
    pub specialty: Specialty,
    pub reason: ClinicalText,
    pub case_summary: ClinicalText,
    /// The assigned doctor; `None` while an urgent request waits for the pool.
    pub doctor: Option<UserId>,
    pub consulting_institution: Option<InstitutionId>,
    /// When the consultation takes place; `None` while an urgent request waits.
    pub window: Option<Window>,
    pub consent: Option<ConsentRecord>,
    pub invitees: Invitees,
    /// Why it was declined, cancelled or marked no-show.
    pub state_reason: String,
    pub created_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    pub escalated_at: Option<OffsetDateTime>,
    /// Incremented by every change; the store refuses a change made to an old version.
    pub version: u64,
}

/// What a clinic asks for when it books a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    pub doctor: UserId,
    pub window: Window,
    pub patient: PatientRef,
    pub specialty: Specialty,
    pub reason: ClinicalText,
    pub case_summary: ClinicalText,
}

/// What a clinic asks for when it files an urgent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrgentRequest {
    pub specialty: Specialty,
    pub patient: PatientRef,
    pub reason: ClinicalText,
    pub case_summary: ClinicalText,
}

/// Why an event cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("consultation is {state}; it cannot be {event}")]
    IllegalTransition {
        state: ConsultationState,
        event: &'static str,
    },
    #[error("{0}")]
    Precondition(String),
}

fn illegal(state: ConsultationState, event: &'static str) -> LifecycleError {
    LifecycleError::IllegalTransition { state, event }
}

/// Everything that can happen to a consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A doctor accepts: the assigned doctor a booking, any pool doctor an urgent request.
    Accept {
        doctor: UserId,
        institution: InstitutionId,
        slot_minutes: SlotMinutes,
        at: OffsetDateTime,
    },
    Decline {
        reason: String,
    },
    Cancel {
        reason: String,
        at: OffsetDateTime,
    },
    /// Move a booked consultation to another slot of the same doctor.
    Reschedule {
        window: Window,
        at: OffsetDateTime,
    },
    RecordConsent(ConsentRecord),
    Invite {
        interpreter: Option<UserId>,
        doctor: Option<UserId>,
    },
    /// Nobody answered an urgent request in time: the pool widens.
    Escalate {
        at: OffsetDateTime,
    },
    /// The first participant is admitted to the live session.
    StartSession,
    /// The doctor ended the session, or everyone left.
    EndSession,
    /// The assigned doctor signed the opinion.
    ReportSigned,
    /// Nobody joined by the end of the window.
    MarkNoShow,
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Accept { .. } => "accepted",
            Event::Decline { .. } => "declined",
            Event::Cancel { .. } => "cancelled",
            Event::Reschedule { .. } => "rescheduled",
            Event::RecordConsent(_) => "given a consent record",
            Event::Invite { .. } => "joined by invitees",
            Event::Escalate { .. } => "escalated",
            Event::StartSession => "started",
            Event::EndSession => "ended",
            Event::ReportSigned => "completed",
            Event::MarkNoShow => "marked no-show",
        }
    }
}

impl Consultation {
    /// A booked slot. It is SCHEDULED at once when the doctor auto-accepts.
    pub fn booked(
        id: ConsultationId,
        request: BookingRequest,
        inviting_institution: InstitutionId,
        consulting_institution: InstitutionId,
        requested_by: UserId,
        auto_accept: bool,
        now: OffsetDateTime,
    ) -> Result<Self, LifecycleError> {
        if request.window.start() <= now {
            return Err(LifecycleError::Precondition(
                "the slot has already begun".into(),
            ));
        }
        Ok(Self {
            id,
            state: if auto_accept {
                ConsultationState::Scheduled
            } else {
                ConsultationState::Requested
            },
            urgency: Urgency::Routine,
            inviting_institution,
            requested_by,
            patient: request.patient,
            specialty: request.specialty,
            reason: request.reason,
            case_summary: request.case_summary,
            doctor: Some(request.doctor),
            consulting_institution: Some(consulting_institution),
            window: Some(request.window),
            consent: None,
            invitees: Invitees::default(),
            state_reason: String::new(),
            created_at: now,
            accepted_at: auto_accept.then_some(now),
            escalated_at: None,
            version: 1,
        })
    }

    /// An urgent request to the on-call pool of a specialty.
    pub fn urgent(
        id: ConsultationId,
        request: UrgentRequest,
        inviting_institution: InstitutionId,
        requested_by: UserId,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            state: ConsultationState::Requested,
            urgency: Urgency::Urgent,
            inviting_institution,
            requested_by,
            patient: request.patient,
            specialty: request.specialty,
            reason: request.reason,
            case_summary: request.case_summary,
            doctor: None,
            consulting_institution: None,
            window: None,
            consent: None,
            invitees: Invitees::default(),
            state_reason: String::new(),
            created_at: now,
            accepted_at: None,
            escalated_at: None,
            version: 1,
        }
    }

    /// Applies `event`, returning the changed consultation (with its version advanced)
    /// or why the event is not allowed now.
    pub fn apply(&self, event: Event) -> Result<Consultation, LifecycleError> {
        use ConsultationState::*;
        let mut next = self.clone();
        next.version += 1;
        let state = self.state;
        let name = event.name();
        match event {
            Event::Accept {
                doctor,
                institution,
                slot_minutes,
                at,
            } => {
                if !state.is_pending() {
                    return Err(illegal(state, name));
                }
                match (&self.doctor, self.urgency) {
                    (Some(assigned), Urgency::Routine) if *assigned != doctor => {
                        return Err(LifecycleError::Precondition(format!(
                            "consultation is assigned to {assigned}"
                        )));
                    }
                    (_, Urgency::Urgent) => {
                        // The first pool doctor to accept takes it, starting now.
                        let length = Duration::minutes(i64::from(slot_minutes.get()));
                        next.window = Some(Window::new(at, at + length).expect("positive length"));
                        next.doctor = Some(doctor);
                        next.consulting_institution = Some(institution);
                    }
                    _ => {}
                }
                next.state = Scheduled;
                next.accepted_at = Some(at);
            }
            Event::Decline { reason } => {
                if state != Requested || self.urgency == Urgency::Urgent {
                    return Err(illegal(state, name));
                }
                next.state = Declined;
                next.state_reason = reason;
            }
            Event::Cancel { reason, at } => {
                let started = self.window.is_some_and(|w| w.start() <= at);
                if !(state.is_pending() || state == Scheduled) {
                    return Err(illegal(state, name));
                }
                if state == Scheduled && started {
                    return Err(LifecycleError::Precondition(
                        "the consultation's window has begun; it can no longer be cancelled".into(),
                    ));
                }
                next.state = Cancelled;
                next.state_reason = reason;
            }
            Event::Reschedule { window, at } => {
                if !(state == Requested || state == Scheduled) || self.urgency == Urgency::Urgent {
                    return Err(illegal(state, name));
                }
                if window.start() <= at {
                    return Err(LifecycleError::Precondition(
                        "the new slot has already begun".into(),
                    ));
                }
                if self.window.is_some_and(|w| w.start() <= at) {
                    return Err(LifecycleError::Precondition(
                        "the consultation's window has begun; it can no longer be moved".into(),
                    ));
                }
                next.window = Some(window);
            }
            Event::RecordConsent(consent) => {
                if state.is_final() || state == AwaitingReport {
                    return Err(illegal(state, name));
                }
                next.consent = Some(consent);
            }
            Event::Invite {
                interpreter,
                doctor,
            } => {
                if !(state.is_pending() || state == Scheduled || state == InSession) {
                    return Err(illegal(state, name));
                }
                if let Some(interpreter) = interpreter
                    && !next.invitees.interpreters.contains(&interpreter)
                {
                    next.invitees.interpreters.push(interpreter);
                }
                if let Some(doctor) = doctor
                    && Some(&doctor) != self.doctor.as_ref()
                    && !next.invitees.additional_doctors.contains(&doctor)
                {
                    next.invitees.additional_doctors.push(doctor);
                }
                if next.invitees.interpreters.len() + next.invitees.additional_doctors.len() > 4 {
                    return Err(LifecycleError::Precondition(
                        "a session holds at most 6 participants".into(),
                    ));
                }
            }
            Event::Escalate { at } => {
                if state != Requested || self.urgency != Urgency::Urgent {
                    return Err(illegal(state, name));
                }
                next.state = Escalated;
                next.escalated_at = Some(at);
            }
            Event::StartSession => {
                if state != Scheduled {
                    return Err(illegal(state, name));
                }
                if self.consent.is_none() {
                    return Err(LifecycleError::Precondition(
                        "the patient's consent has not been recorded".into(),
                    ));
                }
                next.state = InSession;
            }
            Event::EndSession => {
                if state != InSession {
                    return Err(illegal(state, name));
                }
                next.state = AwaitingReport;
            }
            Event::ReportSigned => {
                if state != AwaitingReport {
                    return Err(illegal(state, name));
                }
                next.state = Completed;
            }
            Event::MarkNoShow => {
                if state != Scheduled {
                    return Err(illegal(state, name));
                }
                next.state = NoShow;
                next.state_reason = "nobody joined by the end of the window".into();
            }
        }
        Ok(next)
    }

    /// The doctor's time this consultation holds, if any: a routine booking holds its
    /// slot until it is declined, cancelled or missed. (An urgent consultation takes
    /// the doctor's time at once and holds no bookable slot.)
    pub fn slot_claim(&self) -> Option<(&UserId, Window)> {
        use ConsultationState::*;
        let holds = matches!(
            self.state,
            Requested | Scheduled | InSession | AwaitingReport | Completed
        );
        match (self.urgency, holds, &self.doctor, self.window) {
            (Urgency::Routine, true, Some(doctor), Some(window)) => Some((doctor, window)),
            _ => None,
        }
    }

    /// Everyone who may join the live session.
    pub fn is_participant(&self, user: &UserId) -> bool {
        self.doctor.as_ref() == Some(user)
            || self.invitees.interpreters.contains(user)
            || self.invitees.additional_doctors.contains(user)
    }
}

#[cfg(test)]
mod tests;
