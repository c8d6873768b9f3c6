//! Who may join a consultation's live session, and when.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::consultation::{Consultation, ConsultationState};
use super::directory::Role;
use super::principal::Principal;
use super::schedule::Window;

/// How long before its start and after its end a consultation's session is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindow {
    pub before_start: Duration,
    pub after_end: Duration,
}

impl Default for SessionWindow {
    fn default() -> Self {
        Self {
            before_start: Duration::minutes(15),
            after_end: Duration::minutes(30),
        }
    }
}

impl SessionWindow {
    /// When the session for a consultation scheduled in `window` is open.
    pub fn open_during(&self, window: &Window) -> Window {
        Window::new(
            window.start() - self.before_start,
            window.end() + self.after_end,
        )
        .expect("widening keeps start before end")
    }
}

/// The part a participant plays in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionRole {
    /// Staff of the inviting clinic, on the patient's side.
    ClinicSide,
    /// The assigned doctor: may end the session and invite others.
    Doctor,
    /// A second specialist invited into the session.
    AdditionalDoctor,
    Interpreter,
}

impl SessionRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionRole::ClinicSide => "clinic_side",
            SessionRole::Doctor => "doctor",
            SessionRole::AdditionalDoctor => "additional_doctor",
            SessionRole::Interpreter => "interpreter",
        }
    }
}

impl fmt::Display for SessionRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why someone cannot join now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionRefused {
    #[error("{0} is not a participant of this consultation")]
    NotParticipant(String),
    #[error("the session is open from {} to {}", .0.start(), .0.end())]
    OutsideWindow(Window),
    #[error("the patient's consent has not been recorded")]
    NoConsent,
    #[error("consultation is {0}; only a scheduled or running consultation has a session")]
    NotJoinable(ConsultationState),
}

/// Whether `principal` may join `consultation`'s session at `now`, and as what.
pub fn admit(
    principal: &Principal,
    consultation: &Consultation,
    now: OffsetDateTime,
    window: SessionWindow,
) -> Result<SessionRole, AdmissionRefused> {
    let role = participant_role(principal, consultation)
        .ok_or_else(|| AdmissionRefused::NotParticipant(principal.user.to_string()))?;
    if !matches!(
        consultation.state,
        ConsultationState::Scheduled | ConsultationState::InSession
    ) {
        return Err(AdmissionRefused::NotJoinable(consultation.state));
    }
    if consultation.consent.is_none() {
        return Err(AdmissionRefused::NoConsent);
    }
    let scheduled = consultation
        .window
        .ok_or(AdmissionRefused::NotJoinable(consultation.state))?;
    let open = window.open_during(&scheduled);
    // A running session stays open to its participants past the window's end.
    if consultation.state != ConsultationState::InSession && !open.contains(now) {
        return Err(AdmissionRefused::OutsideWindow(open));
    }
    Ok(role)
}

/// The part `principal` plays in `consultation`, if any.
pub fn participant_role(principal: &Principal, consultation: &Consultation) -> Option<SessionRole> {
    let me = &principal.user;
    match principal.role {
        Role::ClinicStaff if principal.institution == consultation.inviting_institution => {
            Some(SessionRole::ClinicSide)
        }
        Role::Doctor if consultation.doctor.as_ref() == Some(me) => Some(SessionRole::Doctor),
        Role::Doctor if consultation.invitees.additional_doctors.contains(me) => {
            Some(SessionRole::AdditionalDoctor)
        }
        Role::Interpreter if consultation.invitees.interpreters.contains(me) => {
            Some(SessionRole::Interpreter)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::consultation::{
        BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, ConsultationId,
        Event, PatientRef,
    };
    use crate::domain::ids::{InstitutionId, Specialty, UserId};

    const NOW: OffsetDateTime = datetime!(2026-12-01 00:00 UTC);

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn principal(id: &str, role: Role, institution: &str) -> Principal {
        Principal {
            user: user(id),
            institution: InstitutionId::parse(institution).unwrap(),
            role,
            certificate_fingerprint: String::new(),
            specialties: vec![],
            on_call: false,
        }
    }

    fn scheduled(consented: bool) -> Consultation {
        let start = NOW + Duration::hours(1);
        let mut consultation = Consultation::booked(
            ConsultationId::from_random([3; 10]),
            BookingRequest {
                doctor: user("zju2-cardio-chen"),
                window: Window::new(start, start + Duration::minutes(30)).unwrap(),
                patient: PatientRef::parse("BIRU-0042").unwrap(),
                specialty: Specialty::parse("cardiology").unwrap(),
                reason: ClinicalText::required("chest pain", 100).unwrap(),
                case_summary: ClinicalText::default(),
            },
            InstitutionId::parse("biru-county-hospital").unwrap(),
            InstitutionId::parse("zju2-hospital").unwrap(),
            user("biru-nurse-dawa"),
            true,
            NOW,
        )
        .unwrap();
        if consented {
            let consent = ConsentRecord::new(
                Consenter::Patient,
                ConsentMethod::Written,
                user("biru-nurse-dawa"),
                NOW,
                "",
            )
            .unwrap();
            consultation = consultation.apply(Event::RecordConsent(consent)).unwrap();
        }
        consultation
    }

    #[test]
    fn participants_join_inside_the_window() {
        let consultation = scheduled(true);
        let at = NOW + Duration::minutes(50);
        let nurse = principal("biru-nurse-dawa", Role::ClinicStaff, "biru-county-hospital");
        let doctor = principal("zju2-cardio-chen", Role::Doctor, "zju2-hospital");
        assert_eq!(
            admit(&nurse, &consultation, at, SessionWindow::default()),
            Ok(SessionRole::ClinicSide)
        );
        assert_eq!(
            admit(&doctor, &consultation, at, SessionWindow::default()),
            Ok(SessionRole::Doctor)
        );
    }

    #[test]
    fn outsiders_and_wrong_times_are_refused() {
        let consultation = scheduled(true);
        let other_clinic = principal("nagqu-nurse", Role::ClinicStaff, "nagqu-peoples");
        let at = NOW + Duration::minutes(50);
        assert!(matches!(
            admit(&other_clinic, &consultation, at, SessionWindow::default()),
            Err(AdmissionRefused::NotParticipant(_))
        ));
        let nurse = principal("biru-nurse-dawa", Role::ClinicStaff, "biru-county-hospital");
        // 16 minutes before the start is too early; 31 minutes after the end too late.
        for at in [NOW + Duration::minutes(44), NOW + Duration::minutes(121)] {
            assert!(matches!(
                admit(&nurse, &consultation, at, SessionWindow::default()),
                Err(AdmissionRefused::OutsideWindow(_))
            ));
        }
        assert_eq!(
            admit(
                &nurse,
                &scheduled(false),
                NOW + Duration::minutes(50),
                SessionWindow::default()
            ),
            Err(AdmissionRefused::NoConsent)
        );
    }

    #[test]
    fn interpreters_join_once_invited() {
        let interpreter = principal(
            "biru-interpreter-norbu",
            Role::Interpreter,
            "biru-county-hospital",
        );
        let consultation = scheduled(true);
        let at = NOW + Duration::minutes(50);
        assert!(admit(&interpreter, &consultation, at, SessionWindow::default()).is_err());
        let invited = consultation
            .apply(Event::Invite {
                interpreter: Some(interpreter.user.clone()),
                doctor: None,
            })
            .unwrap();
        assert_eq!(
            admit(&interpreter, &invited, at, SessionWindow::default()),
            Ok(SessionRole::Interpreter)
        );
    }
}
