//! Urgent requests, the "one-hour medical service circle": the on-call doctors of the
//! specialty see a request at once; if none accepts within 15 minutes the sweep
//! escalates it to every doctor of the specialty and tells the admins; the first to
//! accept takes it, and the time to acceptance is recorded.

use teleconsult::audit::{Outcome, now_micros};
use teleconsult::domain::consultation::{
    ClinicalText, Consultation, ConsultationId, ConsultationState, PatientRef, UrgentRequest,
};
use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::proto::v1 as pb;
use teleconsult::scheduler::SweepReport;
use time::Duration;
use tonic::Code;

use super::{
    BIRU, BIRU_ADMIN, CARDIOLOGY, CHEN, DAWA, LI, ZHOU, ZJPPH, ZJU2, add_people,
    cardiologist_profile, client_for, details, instant, kind_of, next_event, only_record, refused,
    setup_entry, state_of, stored, user, watch,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

use pb::consultation_event::Kind;

on_both_backends!(
    the_on_call_pool_sees_an_urgent_request_and_every_cardiologist_after_escalation,
    the_time_from_request_to_acceptance_is_recorded,
    a_doctor_too_late_for_an_urgent_request_is_told_it_is_taken,
);

pub fn urgent_request() -> pb::RequestUrgentConsultationRequest {
    pb::RequestUrgentConsultationRequest {
        specialty: CARDIOLOGY.into(),
        patient_ref: "BIRU-2026-0107".into(),
        reason: "crushing chest pain for 40 minutes, ST elevation in II, III, aVF".into(),
        case_summary: "62-year-old, no thrombolysis available on site".into(),
    }
}

/// The ids of the consultations `user` lists.
async fn listed(app: &TestApp, user: &str) -> Vec<String> {
    app.scheduling_as(user)
        .list_consultations(pb::ListConsultationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .consultations
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn the_on_call_pool_sees_an_urgent_request_and_every_cardiologist_after_escalation(
    app: TestApp,
) {
    let mut chen_events = watch(&app, CHEN).await;
    let mut li_events = watch(&app, LI).await;
    let mut admin_events = watch(&app, BIRU_ADMIN).await;

    let head = audit_head(&app).await;
    let urgent = app
        .scheduling_as(DAWA)
        .request_urgent_consultation(urgent_request())
        .await
        .unwrap()
        .into_inner();
    let id = urgent.id.clone();
    let target = format!("consultation:{id}");
    assert_eq!(state_of(&urgent), pb::ConsultationState::Requested);
    assert_eq!(urgent.urgency, pb::Urgency::Urgent as i32);
    assert_eq!(
        (
            urgent.doctor_id.as_str(),
            urgent.consulting_institution_id.as_str()
        ),
        ("", "")
    );
    assert!(urgent.start.is_none());
    assert_eq!(
        (
            urgent.inviting_institution_id.as_str(),
            urgent.specialty.as_str()
        ),
        (BIRU, CARDIOLOGY)
    );
    only_record(
        &audit_since(&app, head).await,
        DAWA,
        "scheduling.request_urgent_consultation",
        &target,
        Outcome::Ok,
    );

    // The on-call cardiologist hears of it at once, and so does the clinic's admin.
    for events in [&mut chen_events, &mut admin_events] {
        let event = next_event(events).await;
        assert_eq!(kind_of(&event), Kind::UrgentRequest);
        assert_eq!(event.consultation.as_ref().unwrap().id, id);
    }
    assert!(listed(&app, CHEN).await.contains(&id));
    // A cardiologist who is not on call, and an ophthalmologist, neither see it nor
    // take it.
    for doctor in [LI, ZHOU] {
        assert!(listed(&app, doctor).await.is_empty(), "{doctor}");
        refused(
            app.scheduling_as(doctor)
                .get_consultation(pb::GetConsultationRequest { id: id.clone() })
                .await,
            Code::PermissionDenied,
            "",
        );
        let head = audit_head(&app).await;
        refused(
            app.scheduling_as(doctor)
                .accept_consultation(pb::AcceptConsultationRequest { id: id.clone() })
                .await,
            Code::PermissionDenied,
            "urgent pool",
        );
        only_record(
            &audit_since(&app, head).await,
            doctor,
            "scheduling.accept_consultation",
            &target,
            Outcome::Denied,
        );
    }

    // Nothing is due before 15 minutes have passed.
    let requested_at = instant(urgent.created_at.as_ref());
    assert_eq!(
        app.sweep_at(requested_at + Duration::minutes(14)).await,
        SweepReport::default()
    );
    let head = audit_head(&app).await;
    let escalated_at = requested_at + Duration::minutes(16);
    let report = app.sweep_at(escalated_at).await;
    assert_eq!(
        report,
        SweepReport {
            escalated: 1,
            no_shows: 0,
            abandoned: 0
        }
    );
    let record = only_record(
        &audit_since(&app, head).await,
        "system:scheduler",
        "scheduling.escalate",
        &target,
        Outcome::Ok,
    );
    assert_eq!(record.entry.target_institution.as_deref(), Some(BIRU));
    assert_eq!(details(&record)["from"], "requested");
    assert_eq!(details(&record)["to"], "escalated");
    let now = stored(&app, &id).await;
    assert_eq!(now.state, ConsultationState::Escalated);
    assert_eq!(now.escalated_at, Some(escalated_at));

    // Li's first event is the escalation: he never heard of the request before it.
    let event = next_event(&mut li_events).await;
    assert_eq!(kind_of(&event), Kind::Escalated);
    let seen = event.consultation.unwrap();
    assert_eq!(
        (seen.id.as_str(), state_of(&seen)),
        (id.as_str(), pb::ConsultationState::Escalated)
    );
    for events in [&mut admin_events, &mut chen_events] {
        let event = next_event(events).await;
        assert_eq!(kind_of(&event), Kind::Escalated);
        assert_eq!(event.consultation.unwrap().id, id);
    }

    // Now every cardiologist sees it, and Li takes it.
    assert!(listed(&app, LI).await.contains(&id));
    assert!(listed(&app, ZHOU).await.is_empty());
    let head = audit_head(&app).await;
    let accepted = app
        .scheduling_as(LI)
        .accept_consultation(pb::AcceptConsultationRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&accepted), pb::ConsultationState::Scheduled);
    assert_eq!(
        (
            accepted.doctor_id.as_str(),
            accepted.consulting_institution_id.as_str()
        ),
        (LI, ZJPPH)
    );
    let accepted_at = instant(accepted.accepted_at.as_ref());
    assert_eq!(
        instant(accepted.start.as_ref()),
        accepted_at,
        "an urgent consultation starts now"
    );
    assert_eq!(
        instant(accepted.end.as_ref()),
        accepted_at + Duration::minutes(30)
    );
    assert_eq!(
        accepted.seconds_to_accept,
        (accepted_at - requested_at).whole_seconds()
    );
    let record = only_record(
        &audit_since(&app, head).await,
        LI,
        "scheduling.accept_consultation",
        &target,
        Outcome::Ok,
    );
    assert_eq!(
        details(&record)["seconds_to_accept"],
        accepted.seconds_to_accept
    );
    assert_eq!(details(&record)["from"], "escalated");
    let event = next_event(&mut li_events).await;
    assert_eq!(kind_of(&event), Kind::Changed);
    assert_eq!(event.consultation.unwrap().doctor_id, LI);
    let event = next_event(&mut admin_events).await;
    assert_eq!(kind_of(&event), Kind::Changed);

    let now = stored(&app, &id).await;
    assert_eq!(now.state, ConsultationState::Scheduled);
    assert_eq!(now.doctor.map(|d| d.to_string()).as_deref(), Some(LI));

    // A specialty nobody practises cannot be asked for.
    refused(
        app.scheduling_as(DAWA)
            .request_urgent_consultation(pb::RequestUrgentConsultationRequest {
                specialty: "dermatology".into(),
                ..urgent_request()
            })
            .await,
        Code::FailedPrecondition,
        "specialty",
    );
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn the_time_from_request_to_acceptance_is_recorded(app: TestApp) {
    // A request made 40 minutes ago that nobody has answered.
    let requested_at = now_micros() - Duration::minutes(40);
    let waiting = Consultation::urgent(
        ConsultationId::from_random([0x40; 10]),
        UrgentRequest {
            specialty: Specialty::parse(CARDIOLOGY).unwrap(),
            patient: PatientRef::parse("BIRU-2026-0108").unwrap(),
            reason: ClinicalText::required("syncope at rest", 2_000).unwrap(),
            case_summary: ClinicalText::default(),
        },
        InstitutionId::parse(BIRU).unwrap(),
        UserId::parse(DAWA).unwrap(),
        requested_at,
    );
    let id = waiting.id.to_string();
    app.store
        .create_consultation(&waiting, setup_entry(&format!("consultation:{id}")))
        .await
        .unwrap();
    // The regular sweep escalates it. (The server sweeps once as it starts, at a moment
    // of its choosing, and may be the one that does.)
    app.sweep_at(now_micros()).await;
    assert_eq!(stored(&app, &id).await.state, ConsultationState::Escalated);

    let accepted = app
        .scheduling_as(LI)
        .accept_consultation(pb::AcceptConsultationRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        (2_400..2_400 + 60).contains(&accepted.seconds_to_accept),
        "{}",
        accepted.seconds_to_accept
    );
    let read = app
        .scheduling_as(DAWA)
        .get_consultation(pb::GetConsultationRequest { id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.seconds_to_accept, accepted.seconds_to_accept);
    assert!(read.escalated_at.is_some());
    app.stop().await;
}

async fn a_doctor_too_late_for_an_urgent_request_is_told_it_is_taken(app: TestApp) {
    let wang = user("zju2-cardio-wang", ZJU2, Role::Doctor);
    add_people(
        &app,
        vec![wang.clone()],
        vec![cardiologist_profile("zju2-cardio-wang", true)],
    )
    .await;
    let urgent = app
        .scheduling_as(DAWA)
        .request_urgent_consultation(urgent_request())
        .await
        .unwrap()
        .into_inner();
    let mut wang_client = client_for(&app, &wang);
    // Both on-call cardiologists see it; Chen answers first.
    wang_client
        .get_consultation(pb::GetConsultationRequest {
            id: urgent.id.clone(),
        })
        .await
        .expect("Wang is in the on-call pool");
    app.scheduling_as(CHEN)
        .accept_consultation(pb::AcceptConsultationRequest {
            id: urgent.id.clone(),
        })
        .await
        .unwrap();
    let before = stored(&app, &urgent.id).await;

    let head = audit_head(&app).await;
    refused(
        wang_client
            .accept_consultation(pb::AcceptConsultationRequest {
                id: urgent.id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "scheduled",
    );
    only_record(
        &audit_since(&app, head).await,
        "zju2-cardio-wang",
        "scheduling.accept_consultation",
        &format!("consultation:{}", urgent.id),
        Outcome::Invalid,
    );
    assert_eq!(stored(&app, &urgent.id).await, before);
    app.stop().await;
}
