//! The live session's side of the lifecycle, driven through the operations the
//! session layer calls: nobody joins before consent is recorded, the end of the session
//! awaits the report whose signing completes the consultation, and a consultation
//! nobody joined becomes a no-show when the sweep finds its window over.

use teleconsult::audit::{Actor, Outcome};
use teleconsult::domain::consultation::ConsultationState;
use teleconsult::proto::v1 as pb;
use teleconsult::relay::lifecycle::{self, SessionLifecycleError};
use teleconsult::scheduler::SweepReport;
use tonic::Code;

use super::{
    BIRU_ADMIN, CHEN, DAWA, DROLMA, NORBU, book, book_scheduled, booking, consultation_id, details,
    end_session, local, monday_ahead, only_record, opinion, publish, record_consent, refused, slot,
    start_session, state_of, stored, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

on_both_backends!(
    consent_comes_before_the_session_and_the_signed_report_completes_it,
    nobody_joining_by_the_end_makes_a_no_show,
);

fn target(consultation: &pb::Consultation) -> String {
    format!("consultation:{}", consultation.id)
}

async fn consent_comes_before_the_session_and_the_signed_report_completes_it(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let scheduled = book_scheduled(&app, local(monday_ahead(0), 9, 0)).await;
    let id = scheduled.id.clone();

    // Nobody joins before consent is recorded.
    let before = stored(&app, &id).await;
    let error = lifecycle::start_session(
        &app.store,
        &app.events,
        &consultation_id(&id),
        Actor::system("test"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, SessionLifecycleError::Lifecycle(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("consent"), "{error}");
    assert_eq!(stored(&app, &id).await, before);

    let consent = |consenter, method, witness: &str| pb::RecordConsentRequest {
        id: id.clone(),
        consent: Some(pb::ConsentRecord {
            consenter: consenter as i32,
            method: method as i32,
            witness: witness.into(),
            ..Default::default()
        }),
    };
    use pb::consent_record::{Consenter, Method};
    let mut dawa = app.scheduling_as(DAWA);
    let status = refused(
        dawa.record_consent(consent(Consenter::Patient, Method::VerbalWitnessed, ""))
            .await,
        Code::InvalidArgument,
        "consent.witness",
    );
    assert!(
        status.message().starts_with("consent.witness:"),
        "{status:?}"
    );
    refused(
        dawa.record_consent(consent(Consenter::Unspecified, Method::Written, ""))
            .await,
        Code::InvalidArgument,
        "consent.consenter",
    );
    refused(
        dawa.record_consent(consent(Consenter::Patient, Method::Unspecified, ""))
            .await,
        Code::InvalidArgument,
        "consent.method",
    );
    for caller in [CHEN, NORBU, DROLMA, BIRU_ADMIN] {
        refused(
            app.scheduling_as(caller)
                .record_consent(consent(Consenter::Patient, Method::Written, ""))
                .await,
            Code::PermissionDenied,
            "",
        );
    }
    assert_eq!(stored(&app, &id).await, before);

    let head = audit_head(&app).await;
    let witness = "Tsering Lhamo, village doctor";
    let recorded = dawa
        .record_consent(consent(
            Consenter::Guardian,
            Method::VerbalWitnessed,
            witness,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&recorded), pb::ConsultationState::Scheduled);
    let record_of_consent = recorded.consent.clone().unwrap();
    assert_eq!(record_of_consent.consenter, Consenter::Guardian as i32);
    assert_eq!(record_of_consent.method, Method::VerbalWitnessed as i32);
    assert_eq!(record_of_consent.recorded_by, DAWA);
    assert_eq!(record_of_consent.witness, witness);
    assert!(record_of_consent.recorded_at.is_some());
    let record = only_record(
        &audit_since(&app, head).await,
        DAWA,
        "scheduling.record_consent",
        &target(&scheduled),
        Outcome::Ok,
    );
    assert_eq!(details(&record)["method"], "verbal_witnessed");

    // Now the session runs, and ends.
    let head = audit_head(&app).await;
    let started = start_session(&app, &id).await;
    assert_eq!(started.state, ConsultationState::InSession);
    let ended = end_session(&app, &id).await;
    assert_eq!(ended.state, ConsultationState::AwaitingReport);
    let records = audit_since(&app, head).await;
    let actions: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.entry.actor.user.as_str(),
                r.entry.action.as_str(),
                r.entry.outcome,
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("system:test", "session.start", Outcome::Ok),
            ("system:test", "session.end", Outcome::Ok)
        ]
    );
    // Ending again is refused by the lifecycle.
    let error = lifecycle::end_session(
        &app.store,
        &app.events,
        &consultation_id(&id),
        Actor::system("test"),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("awaiting_report"), "{error}");

    let mut chen = app.scheduling_as(CHEN);
    chen.file_opinion(opinion(&id, "high-altitude pulmonary hypertension"))
        .await
        .unwrap();
    assert_eq!(
        stored(&app, &id).await.state,
        ConsultationState::AwaitingReport
    );
    chen.sign_opinion(pb::SignOpinionRequest {
        consultation_id: id.clone(),
        version: 1,
    })
    .await
    .unwrap();
    let done = dawa
        .get_consultation(pb::GetConsultationRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&done), pb::ConsultationState::Completed);
    assert_eq!(stored(&app, &id).await.state, ConsultationState::Completed);
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn nobody_joining_by_the_end_makes_a_no_show(app: TestApp) {
    publish(&app, CHEN, usual_week(), true).await;
    let monday = monday_ahead(0);
    let missed = book(&app, DAWA, booking(slot(CHEN, local(monday, 9, 0)))).await;
    let attended = book(&app, DAWA, booking(slot(CHEN, local(monday, 9, 30)))).await;
    let later = book(&app, DAWA, booking(slot(CHEN, local(monday, 11, 30)))).await;
    for booked in [&missed, &attended, &later] {
        assert_eq!(state_of(booked), pb::ConsultationState::Scheduled);
    }
    record_consent(&app, &attended.id).await;
    start_session(&app, &attended.id).await;

    // While the window lasts, nothing is due.
    let report = app.sweep_at(local(monday, 9, 15)).await;
    assert_eq!(report, SweepReport::default());

    let head = audit_head(&app).await;
    let after_both = local(monday, 10, 1);
    let report = app.sweep_at(after_both).await;
    assert_eq!(
        report,
        SweepReport {
            escalated: 0,
            no_shows: 1,
            abandoned: 0
        }
    );
    let record = only_record(
        &audit_since(&app, head).await,
        "system:scheduler",
        "scheduling.no_show",
        &target(&missed),
        Outcome::Ok,
    );
    assert_eq!(details(&record)["from"], "scheduled");
    assert_eq!(details(&record)["to"], "no_show");

    let now = stored(&app, &missed.id).await;
    assert_eq!(now.state, ConsultationState::NoShow);
    assert!(
        now.state_reason.contains("nobody joined"),
        "{}",
        now.state_reason
    );
    assert_eq!(
        stored(&app, &attended.id).await.state,
        ConsultationState::InSession
    );
    assert_eq!(
        stored(&app, &later.id).await.state,
        ConsultationState::Scheduled
    );
    let seen = app
        .scheduling_as(DAWA)
        .get_consultation(pb::GetConsultationRequest {
            id: missed.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&seen), pb::ConsultationState::NoShow);

    // A second sweep finds nothing more to do.
    assert_eq!(app.sweep_at(after_both).await, SweepReport::default());
    assert_chain_intact(&app).await;
    app.stop().await;
}
