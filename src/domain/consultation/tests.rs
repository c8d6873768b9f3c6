use proptest::prelude::*;
use time::macros::datetime;

use super::*;

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn institution(id: &str) -> InstitutionId {
    InstitutionId::parse(id).unwrap()
}

const NOW: OffsetDateTime = datetime!(2026-12-01 02:00 UTC);

fn window(hours_from_now: i64) -> Window {
    let start = NOW + Duration::hours(hours_from_now);
    Window::new(start, start + Duration::minutes(30)).unwrap()
}

fn booking(auto_accept: bool) -> Consultation {
    Consultation::booked(
        ConsultationId::from_random([7; 10]),
        BookingRequest {
            doctor: user("zju2-cardio-chen"),
            window: window(24),
            patient: PatientRef::parse("BIRU-2026-0042").unwrap(),
            specialty: Specialty::parse("cardiology").unwrap(),
            reason: ClinicalText::required("chest pain on exertion", 1000).unwrap(),
            case_summary: ClinicalText::default(),
        },
        institution("biru-county-hospital"),
        institution("zju2-hospital"),
        user("biru-nurse-dawa"),
        auto_accept,
        NOW,
    )
    .unwrap()
}

fn urgent() -> Consultation {
    Consultation::urgent(
        ConsultationId::from_random([9; 10]),
        UrgentRequest {
            specialty: Specialty::parse("high-altitude-medicine").unwrap(),
            patient: PatientRef::parse("NAGQU-7781").unwrap(),
            reason: ClinicalText::required("suspected HAPE", 1000).unwrap(),
            case_summary: ClinicalText::default(),
        },
        institution("nagqu-peoples"),
        user("nagqu-nurse-drolma"),
        NOW,
    )
}

fn consent() -> ConsentRecord {
    ConsentRecord::new(
        Consenter::Patient,
        ConsentMethod::Written,
        user("biru-nurse-dawa"),
        NOW,
        "",
    )
    .unwrap()
}

fn accept(doctor: &str) -> Event {
    Event::Accept {
        doctor: user(doctor),
        institution: institution("zju2-hospital"),
        slot_minutes: SlotMinutes::DEFAULT,
        at: NOW,
    }
}

#[test]
fn the_happy_path() {
    let mut consultation = booking(false);
    assert_eq!(consultation.state, ConsultationState::Requested);
    for event in [
        accept("zju2-cardio-chen"),
        Event::RecordConsent(consent()),
        Event::StartSession,
        Event::EndSession,
        Event::ReportSigned,
    ] {
        consultation = consultation.apply(event).unwrap();
    }
    assert_eq!(consultation.state, ConsultationState::Completed);
    assert_eq!(consultation.version, 6);
}

#[test]
fn auto_accept_schedules_at_once() {
    let consultation = booking(true);
    assert_eq!(consultation.state, ConsultationState::Scheduled);
    assert_eq!(consultation.accepted_at, Some(NOW));
}

#[test]
fn no_session_without_consent() {
    let scheduled = booking(true);
    let error = scheduled.apply(Event::StartSession).unwrap_err();
    assert!(error.to_string().contains("consent"), "{error}");
}

#[test]
fn only_the_assigned_doctor_accepts_a_booking() {
    let error = booking(false).apply(accept("zju2-eye-zhou")).unwrap_err();
    assert!(error.to_string().contains("assigned to zju2-cardio-chen"));
}

#[test]
fn the_first_pool_doctor_takes_an_urgent_request() {
    let accepted = urgent().apply(accept("zjpph-altitude-li")).unwrap();
    assert_eq!(accepted.doctor, Some(user("zjpph-altitude-li")));
    assert_eq!(accepted.window.unwrap().start(), NOW);
    let second = accepted.apply(accept("zju2-cardio-chen")).unwrap_err();
    assert_eq!(
        second.to_string(),
        "consultation is scheduled; it cannot be accepted"
    );
}

#[test]
fn illegal_transitions_name_the_current_state() {
    let completed = ConsultationState::Completed;
    let mut consultation = booking(true);
    consultation.state = completed;
    let error = consultation
        .apply(Event::Cancel {
            reason: "x".into(),
            at: NOW,
        })
        .unwrap_err();
    assert_eq!(
        error,
        LifecycleError::IllegalTransition {
            state: completed,
            event: "cancelled"
        }
    );
}

#[test]
fn a_started_window_cannot_be_cancelled_or_moved() {
    let scheduled = booking(true);
    let later = scheduled.window.unwrap().start() + Duration::minutes(1);
    assert!(
        scheduled
            .apply(Event::Cancel {
                reason: "x".into(),
                at: later
            })
            .is_err()
    );
    assert!(
        scheduled
            .apply(Event::Reschedule {
                window: window(48),
                at: later
            })
            .is_err()
    );
}

#[test]
fn patient_references_are_never_names() {
    for name in ["Tashi Dolkar", "扎西", "བཀྲ་ཤིས", "ab", ""] {
        assert!(PatientRef::parse(name).is_err(), "{name}");
    }
    assert!(PatientRef::parse("BIRU-2026-0042").is_ok());
}

#[test]
fn consultation_ids_round_trip() {
    let id = ConsultationId::from_random([0xab; 10]);
    assert_eq!(ConsultationId::parse(id.as_str()), Ok(id));
    assert!(ConsultationId::parse("c-XYZ").is_err());
}

/// The states from which each state can be reached in one step; anything else is a bug.
fn allowed(from: ConsultationState, to: ConsultationState) -> bool {
    use ConsultationState::*;
    from == to
        || matches!(
            (from, to),
            (Requested, Scheduled | Declined | Cancelled | Escalated)
                | (Escalated, Scheduled | Cancelled)
                | (Scheduled, InSession | Cancelled | NoShow)
                | (InSession, AwaitingReport)
                | (AwaitingReport, Completed)
        )
}

fn event() -> impl Strategy<Value = Event> {
    let doctors = prop::sample::select(vec![
        "zju2-cardio-chen",
        "zju2-eye-zhou",
        "zjpph-altitude-li",
    ]);
    prop_oneof![
        doctors.prop_map(accept),
        Just(Event::Decline {
            reason: "fully booked".into()
        }),
        (0i64..72).prop_map(|h| Event::Cancel {
            reason: "patient transferred".into(),
            at: NOW + Duration::hours(h)
        }),
        (0i64..72, 0i64..72).prop_map(|(h, w)| Event::Reschedule {
            window: window(w),
            at: NOW + Duration::hours(h)
        }),
        Just(Event::RecordConsent(consent())),
        Just(Event::Invite {
            interpreter: Some(user("biru-interpreter-norbu")),
            doctor: None
        }),
        Just(Event::Invite {
            interpreter: None,
            doctor: Some(user("zju2-eye-zhou"))
        }),
        Just(Event::Escalate { at: NOW }),
        Just(Event::StartSession),
        Just(Event::EndSession),
        Just(Event::ReportSigned),
        Just(Event::MarkNoShow),
    ]
}

fn check_invariants(c: &Consultation) -> Result<(), TestCaseError> {
    use ConsultationState::*;
    if matches!(c.state, Scheduled | InSession | AwaitingReport | Completed) {
        prop_assert!(
            c.doctor.is_some() && c.window.is_some() && c.accepted_at.is_some(),
            "{c:?}"
        );
        prop_assert!(c.consulting_institution.is_some());
    }
    if matches!(c.state, InSession | AwaitingReport | Completed) {
        prop_assert!(
            c.consent.is_some(),
            "a session began without consent: {c:?}"
        );
    }
    if c.urgency == Urgency::Urgent && c.state.is_pending() {
        prop_assert!(c.doctor.is_none() && c.window.is_none());
    }
    if c.state == Escalated {
        prop_assert!(c.urgency == Urgency::Urgent && c.escalated_at.is_some());
    }
    if c.state == Declined {
        prop_assert!(c.urgency == Urgency::Routine);
    }
    prop_assert!(c.invitees.interpreters.len() + c.invitees.additional_doctors.len() <= 4);
    Ok(())
}

proptest! {
    /// No sequence of events reaches an illegal state, every step is an allowed edge,
    /// final states are final, and each accepted event advances the version by one.
    #[test]
    fn no_sequence_of_events_reaches_an_illegal_state(
        start_urgent in any::<bool>(),
        auto_accept in any::<bool>(),
        events in proptest::collection::vec(event(), 0..40),
    ) {
        let mut consultation = if start_urgent { urgent() } else { booking(auto_accept) };
        check_invariants(&consultation)?;
        for event in events {
            match consultation.apply(event) {
                Ok(next) => {
                    prop_assert!(!consultation.state.is_final(), "left final state {:?}", consultation.state);
                    prop_assert!(allowed(consultation.state, next.state), "{:?} -> {:?}", consultation.state, next.state);
                    prop_assert_eq!(next.version, consultation.version + 1);
                    check_invariants(&next)?;
                    consultation = next;
                }
                Err(LifecycleError::IllegalTransition { state, .. }) => {
                    prop_assert_eq!(state, consultation.state);
                }
                Err(LifecycleError::Precondition(_)) => {}
            }
        }
    }
}
