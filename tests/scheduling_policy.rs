//! The authorization policy for actions on one consultation, as a table over real
//! consultations: booked and accepted, booked with a second doctor invited, an urgent
//! request waiting for the on-call pool, and one escalated to every doctor of the
//! specialty; for each kind of caller. `tests/api/scheduling/authorization.rs` checks
//! the same rules end to end over gRPC.
//!
//! The expected decisions are written out by hand from the issue, not derived from the
//! policy:
//! - Get, GetOpinion: the inviting clinic's staff, the assigned and invited doctors,
//!   invited interpreters, the doctors an unanswered urgent request is offered to
//!   (on-call doctors of the specialty; after escalation every doctor of it), the
//!   admins of the inviting and of the consulting institution, platform admins.
//! - Accept: the assigned doctor, or a doctor of the urgent pool.
//! - Decline: the assigned doctor.
//! - Cancel, InviteParticipant: the inviting clinic's staff or the assigned doctor.
//! - Reschedule, RecordConsent: the inviting clinic's staff.
//! - FileOpinion, SignOpinion: the assigned doctor.

use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, Consultation, ConsultationId, Event, PatientRef, UrgentRequest,
};
use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::domain::policy::{Action, Target, authorize, can_see};
use teleconsult::domain::principal::Principal;
use teleconsult::domain::schedule::Window;
use time::macros::datetime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Biru booked Chen of zju2-hospital, who accepted; Norbu is invited.
    Booked,
    /// As `Booked`, with Zhou invited as a second doctor.
    WithSecondDoctor,
    /// Biru asked the on-call cardiologists; Norbu is invited.
    Urgent,
    /// Nobody answered: every cardiologist is asked.
    Escalated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}

use Expect::{Allow, Deny};

struct Caller {
    user: &'static str,
    institution: &'static str,
    role: Role,
    specialties: &'static [&'static str],
    on_call: bool,
}

const fn caller(user: &'static str, institution: &'static str, role: Role) -> Caller {
    Caller {
        user,
        institution,
        role,
        specialties: &[],
        on_call: false,
    }
}

/// The table's columns, in order.
const CALLERS: [Caller; 11] = [
    caller("biru-nurse-dawa", "biru-county-hospital", Role::ClinicStaff),
    caller("nagqu-nurse-drolma", "nagqu-peoples", Role::ClinicStaff),
    Caller {
        specialties: &["cardiology"],
        on_call: true,
        ..caller("zju2-cardio-chen", "zju2-hospital", Role::Doctor)
    },
    Caller {
        specialties: &["ophthalmology"],
        ..caller("zju2-eye-zhou", "zju2-hospital", Role::Doctor)
    },
    Caller {
        specialties: &["cardiology", "high-altitude-medicine"],
        ..caller("zjpph-altitude-li", "zj-provincial", Role::Doctor)
    },
    caller(
        "biru-interpreter-norbu",
        "biru-county-hospital",
        Role::Interpreter,
    ),
    caller(
        "biru-interpreter-pema",
        "biru-county-hospital",
        Role::Interpreter,
    ),
    caller("biru-admin", "biru-county-hospital", Role::Admin),
    caller("zju2-admin", "zju2-hospital", Role::Admin),
    caller("zjpph-admin", "zj-provincial", Role::Admin),
    caller("platform-admin", "platform", Role::Admin),
];

#[rustfmt::skip]
const TABLE: &[(Action, Case, [Expect; 11])] = &[
    //                                                dawa   drolma chen   zhou   li     norbu  pema   biru   zju2   zjpph  platform
    //                                                                                                 admin  admin  admin  admin
    (Action::GetConsultation,        Case::Booked,    [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow]),
    (Action::AcceptConsultation,     Case::Booked,    [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::DeclineConsultation,    Case::Booked,    [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::CancelConsultation,     Case::Booked,    [Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RescheduleConsultation, Case::Booked,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RecordConsent,          Case::Booked,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::InviteParticipant,      Case::Booked,    [Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::FileOpinion,            Case::Booked,    [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::SignOpinion,            Case::Booked,    [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::GetOpinion,             Case::Booked,    [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow]),

    // A second doctor takes part and reads, but does not act for the assigned one.
    (Action::GetConsultation,        Case::WithSecondDoctor, [Allow, Deny, Allow, Allow, Deny, Allow, Deny, Allow, Allow, Deny, Allow]),
    (Action::AcceptConsultation,     Case::WithSecondDoctor, [Deny,  Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::DeclineConsultation,    Case::WithSecondDoctor, [Deny,  Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::CancelConsultation,     Case::WithSecondDoctor, [Allow, Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::RescheduleConsultation, Case::WithSecondDoctor, [Allow, Deny, Deny,  Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::RecordConsent,          Case::WithSecondDoctor, [Allow, Deny, Deny,  Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::InviteParticipant,      Case::WithSecondDoctor, [Allow, Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::FileOpinion,            Case::WithSecondDoctor, [Deny,  Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::SignOpinion,            Case::WithSecondDoctor, [Deny,  Deny, Allow, Deny,  Deny, Deny,  Deny, Deny,  Deny,  Deny, Deny ]),
    (Action::GetOpinion,             Case::WithSecondDoctor, [Allow, Deny, Allow, Allow, Deny, Allow, Deny, Allow, Allow, Deny, Allow]),

    (Action::GetConsultation,        Case::Urgent,    [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Allow]),
    (Action::AcceptConsultation,     Case::Urgent,    [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::DeclineConsultation,    Case::Urgent,    [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::CancelConsultation,     Case::Urgent,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RescheduleConsultation, Case::Urgent,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RecordConsent,          Case::Urgent,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::InviteParticipant,      Case::Urgent,    [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::FileOpinion,            Case::Urgent,    [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::SignOpinion,            Case::Urgent,    [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::GetOpinion,             Case::Urgent,    [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Allow]),

    (Action::GetConsultation,        Case::Escalated, [Allow, Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow, Deny,  Deny,  Allow]),
    (Action::AcceptConsultation,     Case::Escalated, [Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::DeclineConsultation,    Case::Escalated, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::CancelConsultation,     Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RescheduleConsultation, Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::RecordConsent,          Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::InviteParticipant,      Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::FileOpinion,            Case::Escalated, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::SignOpinion,            Case::Escalated, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Action::GetOpinion,             Case::Escalated, [Allow, Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow, Deny,  Deny,  Allow]),
];

/// The actions on one consultation the table covers.
const CONSULTATION_ACTIONS: [Action; 10] = [
    Action::GetConsultation,
    Action::AcceptConsultation,
    Action::DeclineConsultation,
    Action::CancelConsultation,
    Action::RescheduleConsultation,
    Action::RecordConsent,
    Action::InviteParticipant,
    Action::FileOpinion,
    Action::SignOpinion,
    Action::GetOpinion,
];

const CASES: [Case; 4] = [
    Case::Booked,
    Case::WithSecondDoctor,
    Case::Urgent,
    Case::Escalated,
];

fn principal(caller: &Caller) -> Principal {
    Principal {
        user: UserId::parse(caller.user).unwrap(),
        institution: InstitutionId::parse(caller.institution).unwrap(),
        role: caller.role,
        certificate_fingerprint: String::new(),
        specialties: caller
            .specialties
            .iter()
            .map(|s| Specialty::parse(s).unwrap())
            .collect(),
        on_call: caller.on_call,
    }
}

fn consultation(case: Case) -> Consultation {
    let now = datetime!(2026-12-01 02:00 UTC);
    let id = ConsultationId::from_random([0x5c; 10]);
    let biru = InstitutionId::parse("biru-county-hospital").unwrap();
    let dawa = UserId::parse("biru-nurse-dawa").unwrap();
    let patient = PatientRef::parse("BIRU-2026-0311").unwrap();
    let specialty = Specialty::parse("cardiology").unwrap();
    let reason = ClinicalText::required("chest pain on exertion", 2_000).unwrap();
    let user = |id: &str| UserId::parse(id).unwrap();
    let invite_norbu = Event::Invite {
        interpreter: Some(user("biru-interpreter-norbu")),
        doctor: None,
    };
    let (first, events) = match case {
        Case::Booked | Case::WithSecondDoctor => {
            let start = datetime!(2026-12-07 01:00 UTC);
            let request = BookingRequest {
                doctor: user("zju2-cardio-chen"),
                window: Window::new(start, start + time::Duration::minutes(30)).unwrap(),
                patient,
                specialty,
                reason,
                case_summary: ClinicalText::default(),
            };
            let zju2 = InstitutionId::parse("zju2-hospital").unwrap();
            let booked = Consultation::booked(id, request, biru, zju2, dawa, false, now).unwrap();
            let mut events = vec![
                Event::Accept {
                    doctor: user("zju2-cardio-chen"),
                    institution: InstitutionId::parse("zju2-hospital").unwrap(),
                    slot_minutes: Default::default(),
                    at: now,
                },
                invite_norbu,
            ];
            if case == Case::WithSecondDoctor {
                events.push(Event::Invite {
                    interpreter: None,
                    doctor: Some(user("zju2-eye-zhou")),
                });
            }
            (booked, events)
        }
        Case::Urgent | Case::Escalated => {
            let request = UrgentRequest {
                specialty,
                patient,
                reason,
                case_summary: ClinicalText::default(),
            };
            let urgent = Consultation::urgent(id, request, biru, dawa, now);
            let mut events = vec![invite_norbu];
            if case == Case::Escalated {
                events.push(Event::Escalate { at: now });
            }
            (urgent, events)
        }
    };
    events.into_iter().fold(first, |consultation, event| {
        consultation.apply(event).unwrap()
    })
}

#[test]
fn the_table_covers_every_action_and_case_once() {
    for action in CONSULTATION_ACTIONS {
        for case in CASES {
            let rows = TABLE
                .iter()
                .filter(|(a, c, _)| (*a, *c) == (action, case))
                .count();
            assert_eq!(rows, 1, "{action:?} on {case:?}");
        }
    }
    assert_eq!(TABLE.len(), CONSULTATION_ACTIONS.len() * CASES.len());
}

#[test]
fn consultation_actions_follow_the_table() {
    let mut wrong = Vec::new();
    for &(action, case, expected) in TABLE {
        let consultation = consultation(case);
        let target = Target::consultation(&consultation);
        for (caller, expect) in CALLERS.iter().zip(expected) {
            let decision = authorize(&principal(caller), action, &target);
            if decision.is_allowed() != (expect == Allow) {
                wrong.push(format!(
                    "{action:?} on {case:?} by {}: expected {expect:?}, got {decision:?}",
                    caller.user
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What a caller may see of a consultation (its events on `Watch`) is what they may
/// get: the two never disagree.
#[test]
fn seeing_and_getting_agree() {
    for case in CASES {
        let consultation = consultation(case);
        let target = Target::consultation(&consultation);
        for caller in &CALLERS {
            let principal = principal(caller);
            assert_eq!(
                can_see(&principal, &consultation),
                authorize(&principal, Action::GetConsultation, &target).is_allowed(),
                "{} on {case:?}",
                caller.user
            );
        }
    }
}
