//! The authorization table for the RPCs on one consultation, end to end: each RPC, on
//! a booked consultation, on an urgent request waiting for the on-call pool and on an
//! escalated one, called over mutual TLS by each kind of caller with a request that is
//! valid apart from who sends it.
//!
//! A denial must answer PERMISSION_DENIED, leave exactly one `denied` audit record
//! naming the caller, the action and the consultation, and change nothing. An allowed
//! call must get past the gate: whatever it then answers (it may well be refused for
//! the consultation's state), it is not PERMISSION_DENIED or UNAUTHENTICATED and leaves
//! no denial in the log. Allowed calls that change something each get a consultation
//! of their own, so that one cell cannot decide the next.
//!
//! The rules, written out by hand from the issue rather than derived from the policy:
//! - Get, GetOpinion: the inviting clinic's staff, the assigned doctor, invited
//!   interpreters, the doctors an unanswered urgent request is offered to (on-call
//!   doctors of the specialty; after escalation every doctor of it), the admins of the
//!   inviting and of the consulting institution, platform admins.
//! - Accept: the assigned doctor, or a doctor of the urgent pool.
//! - Decline: the assigned doctor.
//! - Cancel, InviteParticipant: the inviting clinic's staff or the assigned doctor.
//! - Reschedule, RecordConsent: the inviting clinic's staff.
//! - FileOpinion, SignOpinion: the assigned doctor.
//! - Admins only read; nobody else acts on a consultation.

use std::collections::{HashMap, HashSet};

use teleconsult::audit::{Outcome, now_micros};
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, Consultation, ConsultationId, Event, PatientRef, UrgentRequest,
};
use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::domain::schedule::Window;
use teleconsult::proto::v1 as pb;
use time::Duration;
use tonic::{Code, Status};

use super::{
    BIRU, BIRU_ADMIN, CARDIOLOGY, CHEN, Client, DAWA, DROLMA, LI, NORBU, PLATFORM_ADMIN, ZHOU,
    ZJPPH, ZJU2, ZJU2_ADMIN, add_people, client_for, local, monday_ahead, opinion, setup_entry,
    slot, user, written_consent,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rpc {
    Get,
    Accept,
    Decline,
    Cancel,
    Reschedule,
    RecordConsent,
    Invite,
    FileOpinion,
    SignOpinion,
    GetOpinion,
}

impl Rpc {
    const ALL: [Rpc; 10] = [
        Rpc::Get,
        Rpc::Accept,
        Rpc::Decline,
        Rpc::Cancel,
        Rpc::Reschedule,
        Rpc::RecordConsent,
        Rpc::Invite,
        Rpc::FileOpinion,
        Rpc::SignOpinion,
        Rpc::GetOpinion,
    ];

    /// The action its audit records name.
    fn action(self) -> &'static str {
        match self {
            Rpc::Get => "scheduling.get_consultation",
            Rpc::Accept => "scheduling.accept_consultation",
            Rpc::Decline => "scheduling.decline_consultation",
            Rpc::Cancel => "scheduling.cancel_consultation",
            Rpc::Reschedule => "scheduling.reschedule_consultation",
            Rpc::RecordConsent => "scheduling.record_consent",
            Rpc::Invite => "scheduling.invite_participant",
            Rpc::FileOpinion => "scheduling.file_opinion",
            Rpc::SignOpinion => "scheduling.sign_opinion",
            Rpc::GetOpinion => "scheduling.get_opinion",
        }
    }

    fn changes_something(self) -> bool {
        !matches!(self, Rpc::Get | Rpc::GetOpinion)
    }

    async fn call(self, client: &mut Client, id: &str) -> Result<(), Status> {
        let id = id.to_owned();
        match self {
            Rpc::Get => client
                .get_consultation(pb::GetConsultationRequest { id })
                .await
                .map(drop),
            Rpc::Accept => client
                .accept_consultation(pb::AcceptConsultationRequest { id })
                .await
                .map(drop),
            Rpc::Decline => client
                .decline_consultation(pb::DeclineConsultationRequest {
                    id,
                    reason: "outside my field".into(),
                })
                .await
                .map(drop),
            Rpc::Cancel => client
                .cancel_consultation(pb::CancelConsultationRequest {
                    id,
                    reason: "patient transferred".into(),
                })
                .await
                .map(drop),
            Rpc::Reschedule => client
                .reschedule_consultation(pb::RescheduleConsultationRequest {
                    id,
                    new_slot: Some(slot(CHEN, local(monday_ahead(3), 9, 0))),
                })
                .await
                .map(drop),
            Rpc::RecordConsent => client
                .record_consent(pb::RecordConsentRequest {
                    id,
                    consent: Some(written_consent()),
                })
                .await
                .map(drop),
            Rpc::Invite => client
                .invite_participant(pb::InviteParticipantRequest {
                    id,
                    user_id: NORBU.into(),
                })
                .await
                .map(drop),
            Rpc::FileOpinion => client
                .file_opinion(opinion(&id, "acute inferior myocardial infarction"))
                .await
                .map(drop),
            Rpc::SignOpinion => client
                .sign_opinion(pb::SignOpinionRequest {
                    consultation_id: id,
                    version: 0,
                })
                .await
                .map(drop),
            Rpc::GetOpinion => client
                .get_opinion(pb::GetOpinionRequest {
                    consultation_id: id,
                    version: 0,
                })
                .await
                .map(drop),
        }
    }
}

/// The consultation a row is about. Norbu is invited to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    /// Biru booked Chen (zju2-hospital), who accepted: SCHEDULED.
    Booked,
    /// Biru asked the on-call cardiologists (Chen is one; Li is not on call).
    Urgent,
    /// Nobody answered: every cardiologist (Chen and Li) is asked.
    Escalated,
}

const CASES: [Case; 3] = [Case::Booked, Case::Urgent, Case::Escalated];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}

use Expect::{Allow, Deny};

/// An interpreter of the inviting institution whom nobody invited.
const PEMA: &str = "biru-interpreter-pema";
/// An admin of a consulting institution that has nothing to do with the consultation
/// (until Li, who works there, takes an escalated request).
const ZJPPH_ADMIN: &str = "zjpph-admin";

/// The table's columns, in order.
const CALLERS: [&str; 11] = [
    DAWA,           // clinic staff of the inviting institution
    DROLMA,         // clinic staff of another clinic
    CHEN,           // Booked: the assigned doctor; Urgent and Escalated: in the pool
    ZHOU,           // a doctor of the same hospital, another specialty
    LI,             // a cardiologist not on call: in the pool only once escalated
    NORBU,          // the invited interpreter
    PEMA,           // an interpreter nobody invited
    BIRU_ADMIN,     // admin of the inviting institution
    ZJU2_ADMIN,     // admin of the consulting institution (Booked)
    ZJPPH_ADMIN,    // admin of an unrelated institution
    PLATFORM_ADMIN, // platform admin
];

#[rustfmt::skip]
const TABLE: &[(Rpc, Case, [Expect; 11])] = &[
    //                                 dawa   drolma chen   zhou   li     norbu  pema   biru   zju2   zjpph  platform
    //                                                                                  admin  admin  admin  admin
    (Rpc::Get,           Case::Booked, [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow]),
    (Rpc::Accept,        Case::Booked, [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Decline,       Case::Booked, [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Cancel,        Case::Booked, [Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Reschedule,    Case::Booked, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::RecordConsent, Case::Booked, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Invite,        Case::Booked, [Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::FileOpinion,   Case::Booked, [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::SignOpinion,   Case::Booked, [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::GetOpinion,    Case::Booked, [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow]),

    (Rpc::Get,           Case::Urgent, [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Allow]),
    (Rpc::Accept,        Case::Urgent, [Deny,  Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Decline,       Case::Urgent, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Cancel,        Case::Urgent, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Reschedule,    Case::Urgent, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::RecordConsent, Case::Urgent, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Invite,        Case::Urgent, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::FileOpinion,   Case::Urgent, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::SignOpinion,   Case::Urgent, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::GetOpinion,    Case::Urgent, [Allow, Deny,  Allow, Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Allow]),

    (Rpc::Get,        Case::Escalated, [Allow, Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow, Deny,  Deny,  Allow]),
    (Rpc::Accept,     Case::Escalated, [Deny,  Deny,  Allow, Deny,  Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Decline,    Case::Escalated, [Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Cancel,     Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Reschedule, Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::RecordConsent, Case::Escalated, [Allow, Deny, Deny, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::Invite,     Case::Escalated, [Allow, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::FileOpinion, Case::Escalated, [Deny, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::SignOpinion, Case::Escalated, [Deny, Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny,  Deny ]),
    (Rpc::GetOpinion, Case::Escalated, [Allow, Deny,  Allow, Deny,  Allow, Allow, Deny,  Allow, Deny,  Deny,  Allow]),
];

/// Makes a consultation of `case` directly in the store (the table is about who may
/// call, not about how consultations come to be); `n` keeps booked windows apart.
async fn consultation(app: &TestApp, case: Case, n: u32) -> Consultation {
    let now = now_micros();
    let mut random = [0u8; 10];
    random[..4].copy_from_slice(&n.to_be_bytes());
    random[9] = 0xa5;
    let id = ConsultationId::from_random(random);
    let biru = InstitutionId::parse(BIRU).unwrap();
    let dawa = UserId::parse(DAWA).unwrap();
    let patient = PatientRef::parse("BIRU-2026-0311").unwrap();
    let specialty = Specialty::parse(CARDIOLOGY).unwrap();
    let reason = ClinicalText::required("chest pain on exertion", 2_000).unwrap();
    let first = match case {
        Case::Booked => {
            let start = local(monday_ahead(1), 0, 0) + Duration::minutes(30 * i64::from(n));
            let request = BookingRequest {
                doctor: UserId::parse(CHEN).unwrap(),
                window: Window::new(start, start + Duration::minutes(30)).unwrap(),
                patient,
                specialty,
                reason,
                case_summary: ClinicalText::default(),
            };
            let zju2 = InstitutionId::parse(ZJU2).unwrap();
            Consultation::booked(id, request, biru, zju2, dawa, true, now).unwrap()
        }
        Case::Urgent | Case::Escalated => {
            let request = UrgentRequest {
                specialty,
                patient,
                reason,
                case_summary: ClinicalText::default(),
            };
            Consultation::urgent(id, request, biru, dawa, now)
        }
    };
    let target = format!("consultation:{}", first.id);
    app.store
        .create_consultation(&first, setup_entry(&target))
        .await
        .unwrap();
    let mut events = vec![Event::Invite {
        interpreter: Some(UserId::parse(NORBU).unwrap()),
        doctor: None,
    }];
    if case == Case::Escalated {
        events.push(Event::Escalate { at: now });
    }
    let mut current = first;
    for event in events {
        let next = current.apply(event).unwrap();
        app.store
            .update_consultation(&next, setup_entry(&target))
            .await
            .unwrap();
        current = next;
    }
    current
}

#[test]
fn the_table_has_one_row_for_every_rpc_and_case() {
    let rows: Vec<_> = TABLE.iter().map(|(rpc, case, _)| (*rpc, *case)).collect();
    let unique: HashSet<_> = rows.iter().copied().collect();
    assert_eq!(unique.len(), rows.len(), "no row twice");
    for rpc in Rpc::ALL {
        for case in CASES {
            assert!(
                unique.contains(&(rpc, case)),
                "no row for {rpc:?} on {case:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consultation_rpc_for_every_caller() {
    let app = TestApp::spawn().await;
    let pema = user(PEMA, BIRU, Role::Interpreter);
    let zjpph_admin = user(ZJPPH_ADMIN, ZJPPH, Role::Admin);
    add_people(&app, vec![pema.clone(), zjpph_admin.clone()], vec![]).await;
    let mut clients: HashMap<&str, Client> = CALLERS
        .iter()
        .map(|&caller| {
            let client = match caller {
                PEMA => client_for(&app, &pema),
                ZJPPH_ADMIN => client_for(&app, &zjpph_admin),
                fixture => app.scheduling_as(fixture),
            };
            (caller, client)
        })
        .collect();

    let mut made = 0;
    let mut failures = Vec::new();
    for &(rpc, case, expected) in TABLE {
        made += 1;
        let shared = consultation(&app, case, made).await;
        for (&caller, expect) in CALLERS.iter().zip(expected) {
            let cell = format!("{rpc:?} on {case:?} by {caller}");
            let target = if expect == Allow && rpc.changes_something() {
                made += 1;
                consultation(&app, case, made).await
            } else {
                shared.clone()
            };
            let before = app.store.consultation(&target.id).await.unwrap();
            let opinions_before = app.store.opinions(&target.id).await.unwrap();
            let head = audit_head(&app).await;
            let client = clients.get_mut(caller).unwrap();
            let result = rpc.call(client, target.id.as_str()).await;
            let records = audit_since(&app, head).await;
            let denials: Vec<_> = records
                .iter()
                .filter(|r| r.entry.outcome == Outcome::Denied)
                .collect();
            match (expect, result) {
                (Deny, Err(status)) if status.code() == Code::PermissionDenied => {
                    let recorded: Vec<_> = records
                        .iter()
                        .map(|r| {
                            let e = &r.entry;
                            (
                                e.actor.user.as_str(),
                                e.action.as_str(),
                                e.target.clone(),
                                e.target_institution.as_deref(),
                                e.outcome,
                            )
                        })
                        .collect();
                    let wanted = (
                        caller,
                        rpc.action(),
                        format!("consultation:{}", target.id),
                        Some(BIRU),
                        Outcome::Denied,
                    );
                    if recorded != [wanted.clone()] {
                        failures.push(format!(
                            "{cell}: recorded {recorded:?}, expected [{wanted:?}]"
                        ));
                    }
                    let after = app.store.consultation(&target.id).await.unwrap();
                    let opinions_after = app.store.opinions(&target.id).await.unwrap();
                    if after != before || opinions_after != opinions_before {
                        failures.push(format!("{cell}: a denied call changed the consultation"));
                    }
                }
                (Deny, other) => {
                    failures.push(format!("{cell}: expected PERMISSION_DENIED, got {other:?}"))
                }
                (Allow, Err(status))
                    if matches!(
                        status.code(),
                        Code::PermissionDenied | Code::Unauthenticated
                    ) =>
                {
                    failures.push(format!("{cell}: expected to be allowed, got {status:?}"))
                }
                (Allow, _) if !denials.is_empty() => {
                    failures.push(format!("{cell}: allowed, but a denial was recorded"))
                }
                (Allow, _) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells of the table are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_chain_intact(&app).await;
    app.stop().await;
}
