//! The consultation lifecycle over gRPC before the session: accept, decline, cancel,
//! reschedule, and the transitions no state allows. Every change is checked in the
//! answer, in the store and in the audit chain; every refusal leaves the consultation
//! as it was and one record saying so. (The session's part is in `session.rs`.)

use teleconsult::audit::Outcome;
use teleconsult::domain::consultation::ConsultationState;
use teleconsult::proto::v1 as pb;
use time::Duration;
use tonic::Code;

use super::{
    BIRU_ADMIN, CHEN, DAWA, DROLMA, LI, NORBU, PLATFORM_ADMIN, ZHOU, ZJU2_ADMIN, book,
    book_scheduled, booking, completed, details, free_starts, instant, local, monday_ahead,
    only_record, publish, refused, slot, state_of, stored, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

on_both_backends!(
    only_the_assigned_doctor_accepts,
    declining_gives_a_reason_and_frees_the_slot,
    either_side_cancels_before_the_start,
    rescheduling_moves_the_booking_in_one_step,
    illegal_transitions_name_the_current_state,
);

fn target(consultation: &pb::Consultation) -> String {
    format!("consultation:{}", consultation.id)
}

async fn only_the_assigned_doctor_accepts(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let booked = book(
        &app,
        DAWA,
        booking(slot(CHEN, local(monday_ahead(0), 9, 0))),
    )
    .await;
    let before = stored(&app, &booked.id).await;
    for caller in [
        ZHOU,
        LI,
        DAWA,
        DROLMA,
        NORBU,
        ZJU2_ADMIN,
        BIRU_ADMIN,
        PLATFORM_ADMIN,
    ] {
        let head = audit_head(&app).await;
        refused(
            app.scheduling_as(caller)
                .accept_consultation(pb::AcceptConsultationRequest {
                    id: booked.id.clone(),
                })
                .await,
            Code::PermissionDenied,
            "the assigned doctor",
        );
        only_record(
            &audit_since(&app, head).await,
            caller,
            "scheduling.accept_consultation",
            &target(&booked),
            Outcome::Denied,
        );
        assert_eq!(
            stored(&app, &booked.id).await,
            before,
            "{caller} changed nothing"
        );
    }

    let head = audit_head(&app).await;
    let accepted = app
        .scheduling_as(CHEN)
        .accept_consultation(pb::AcceptConsultationRequest {
            id: booked.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&accepted), pb::ConsultationState::Scheduled);
    assert_eq!(accepted.version, 2);
    assert_eq!(accepted.doctor_id, CHEN);
    assert_eq!((accepted.start, accepted.end), (booked.start, booked.end));
    assert!(accepted.accepted_at.is_some());
    let record = only_record(
        &audit_since(&app, head).await,
        CHEN,
        "scheduling.accept_consultation",
        &target(&booked),
        Outcome::Ok,
    );
    let said = details(&record);
    assert_eq!(
        (said["from"].as_str(), said["to"].as_str()),
        (Some("requested"), Some("scheduled"))
    );
    assert_eq!(said["version"], 2);
    let now = stored(&app, &booked.id).await;
    assert_eq!((now.state, now.version), (ConsultationState::Scheduled, 2));

    refused(
        app.scheduling_as(CHEN)
            .accept_consultation(pb::AcceptConsultationRequest {
                id: booked.id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "scheduled",
    );
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn declining_gives_a_reason_and_frees_the_slot(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let start = local(monday_ahead(0), 9, 0);
    let booked = book(&app, DAWA, booking(slot(CHEN, start))).await;
    let mut chen = app.scheduling_as(CHEN);
    let decline = |reason: &str| pb::DeclineConsultationRequest {
        id: booked.id.clone(),
        reason: reason.into(),
    };
    let status = refused(
        chen.decline_consultation(decline("  ")).await,
        Code::InvalidArgument,
        "reason",
    );
    assert!(status.message().starts_with("reason:"), "{status:?}");
    refused(
        app.scheduling_as(DAWA)
            .decline_consultation(decline("no"))
            .await,
        Code::PermissionDenied,
        "",
    );
    refused(
        app.scheduling_as(ZHOU)
            .decline_consultation(decline("no"))
            .await,
        Code::PermissionDenied,
        "",
    );
    assert_eq!(
        stored(&app, &booked.id).await.state,
        ConsultationState::Requested
    );

    let head = audit_head(&app).await;
    let reason = "on leave that week; Dr Li at Zhejiang Provincial sees altitude cases";
    let declined = chen
        .decline_consultation(decline(reason))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&declined), pb::ConsultationState::Declined);
    assert_eq!(declined.state_reason, reason);
    let record = only_record(
        &audit_since(&app, head).await,
        CHEN,
        "scheduling.decline_consultation",
        &target(&booked),
        Outcome::Ok,
    );
    assert_eq!(details(&record)["reason"], reason);
    assert_eq!(details(&record)["to"], "declined");
    let now = stored(&app, &booked.id).await;
    assert_eq!(
        (now.state, now.state_reason.as_str()),
        (ConsultationState::Declined, reason)
    );

    // The slot is free again, and can be booked anew.
    let hour = start + Duration::hours(1);
    assert!(free_starts(&app, CHEN, start, hour).await.contains(&start));
    let again = book(&app, DAWA, booking(slot(CHEN, start))).await;
    assert_eq!(state_of(&again), pb::ConsultationState::Requested);
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn either_side_cancels_before_the_start(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let monday = monday_ahead(0);
    let (first, second) = (local(monday, 9, 0), local(monday, 9, 30));
    let requested = book(&app, DAWA, booking(slot(CHEN, first))).await;
    let scheduled = book_scheduled(&app, second).await;
    let cancel = |id: &str, reason: &str| pb::CancelConsultationRequest {
        id: id.into(),
        reason: reason.into(),
    };

    refused(
        app.scheduling_as(DAWA)
            .cancel_consultation(cancel(&requested.id, ""))
            .await,
        Code::InvalidArgument,
        "reason",
    );
    for caller in [DROLMA, ZHOU, NORBU, BIRU_ADMIN, ZJU2_ADMIN] {
        refused(
            app.scheduling_as(caller)
                .cancel_consultation(cancel(&scheduled.id, "not mine to cancel"))
                .await,
            Code::PermissionDenied,
            "",
        );
    }

    // The clinic cancels a request, the doctor a scheduled consultation.
    for (caller, consultation, reason) in [
        (DAWA, &requested, "patient transferred to Lhasa by air"),
        (CHEN, &scheduled, "called to emergency surgery"),
    ] {
        let head = audit_head(&app).await;
        let cancelled = app
            .scheduling_as(caller)
            .cancel_consultation(cancel(&consultation.id, reason))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(state_of(&cancelled), pb::ConsultationState::Cancelled);
        assert_eq!(cancelled.state_reason, reason);
        assert_eq!(cancelled.version, consultation.version + 1);
        let record = only_record(
            &audit_since(&app, head).await,
            caller,
            "scheduling.cancel_consultation",
            &target(consultation),
            Outcome::Ok,
        );
        assert_eq!(details(&record)["reason"], reason);
        let now = stored(&app, &consultation.id).await;
        assert_eq!(
            (now.state, now.state_reason.as_str()),
            (ConsultationState::Cancelled, reason)
        );
    }
    let free = free_starts(&app, CHEN, first, first + Duration::hours(1)).await;
    assert_eq!(free, vec![first, second], "both slots are free again");
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn rescheduling_moves_the_booking_in_one_step(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let monday = monday_ahead(0);
    let (nine, half_past, ten) = (
        local(monday, 9, 0),
        local(monday, 9, 30),
        local(monday, 10, 0),
    );
    let moving = book(&app, DAWA, booking(slot(CHEN, nine))).await;
    let staying = book(&app, DAWA, booking(slot(CHEN, half_past))).await;
    let mut dawa = app.scheduling_as(DAWA);
    let to = |start| pb::RescheduleConsultationRequest {
        id: moving.id.clone(),
        new_slot: Some(slot(CHEN, start)),
    };
    let noon = local(monday, 12, 0);

    let head = audit_head(&app).await;
    let moved = dawa
        .reschedule_consultation(to(ten))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(instant(moved.start.as_ref()), ten);
    assert_eq!(instant(moved.end.as_ref()), ten + Duration::minutes(30));
    assert_eq!((moved.state, moved.version), (moving.state, 2));
    let record = only_record(
        &audit_since(&app, head).await,
        DAWA,
        "scheduling.reschedule_consultation",
        &target(&moving),
        Outcome::Ok,
    );
    assert!(
        details(&record)["new_window"]
            .as_str()
            .unwrap()
            .contains("10:00")
    );
    let free = free_starts(&app, CHEN, nine, noon).await;
    assert!(free.contains(&nine), "the old slot is free");
    assert!(!free.contains(&ten), "the new slot is taken");
    assert!(!free.contains(&half_past));

    // Onto a taken slot: refused, and nothing moves.
    let (before_moving, before_staying) = (
        stored(&app, &moving.id).await,
        stored(&app, &staying.id).await,
    );
    let head = audit_head(&app).await;
    refused(
        dawa.reschedule_consultation(to(half_past)).await,
        Code::AlreadyExists,
        "",
    );
    only_record(
        &audit_since(&app, head).await,
        DAWA,
        "scheduling.reschedule_consultation",
        &target(&moving),
        Outcome::Invalid,
    );
    assert_eq!(stored(&app, &moving.id).await, before_moving);
    assert_eq!(stored(&app, &staying.id).await, before_staying);
    assert_eq!(
        free_starts(&app, CHEN, nine, noon).await,
        free,
        "the claims are as they were"
    );

    // Another doctor's slot, or a slot the doctor does not offer.
    let status = refused(
        dawa.reschedule_consultation(pb::RescheduleConsultationRequest {
            id: moving.id.clone(),
            new_slot: Some(slot(ZHOU, ten)),
        })
        .await,
        Code::FailedPrecondition,
        "new_slot.doctor_id",
    );
    assert!(
        status.message().starts_with("new_slot.doctor_id:"),
        "{status:?}"
    );
    refused(
        dawa.reschedule_consultation(to(local(monday, 14, 0))).await,
        Code::FailedPrecondition,
        "new_slot",
    );
    // Only the clinic moves it.
    refused(
        app.scheduling_as(CHEN)
            .reschedule_consultation(to(local(monday, 11, 0)))
            .await,
        Code::PermissionDenied,
        "",
    );
    assert_eq!(stored(&app, &moving.id).await, before_moving);
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn illegal_transitions_name_the_current_state(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let monday = monday_ahead(0);
    let cancelled = book(&app, DAWA, booking(slot(CHEN, local(monday, 9, 0)))).await;
    app.scheduling_as(DAWA)
        .cancel_consultation(pb::CancelConsultationRequest {
            id: cancelled.id.clone(),
            reason: "patient recovered".into(),
        })
        .await
        .unwrap();
    let declined = book(&app, DAWA, booking(slot(CHEN, local(monday, 9, 30)))).await;
    app.scheduling_as(CHEN)
        .decline_consultation(pb::DeclineConsultationRequest {
            id: declined.id.clone(),
            reason: "outside my field".into(),
        })
        .await
        .unwrap();
    let done = completed(&app, local(monday, 10, 0)).await;
    assert_eq!(state_of(&done), pb::ConsultationState::Completed);
    let free_slot = local(monday, 11, 30);

    for (consultation, state) in [
        (&cancelled, "cancelled"),
        (&declined, "declined"),
        (&done, "completed"),
    ] {
        let id = consultation.id.clone();
        let before = stored(&app, &id).await;
        let mut chen = app.scheduling_as(CHEN);
        let mut dawa = app.scheduling_as(DAWA);
        let attempts = [
            (
                CHEN,
                "scheduling.accept_consultation",
                chen.accept_consultation(pb::AcceptConsultationRequest { id: id.clone() })
                    .await
                    .map(|_| ()),
            ),
            (
                CHEN,
                "scheduling.decline_consultation",
                chen.decline_consultation(pb::DeclineConsultationRequest {
                    id: id.clone(),
                    reason: "busy".into(),
                })
                .await
                .map(|_| ()),
            ),
            (
                DAWA,
                "scheduling.cancel_consultation",
                dawa.cancel_consultation(pb::CancelConsultationRequest {
                    id: id.clone(),
                    reason: "no longer needed".into(),
                })
                .await
                .map(|_| ()),
            ),
            (
                DAWA,
                "scheduling.reschedule_consultation",
                dawa.reschedule_consultation(pb::RescheduleConsultationRequest {
                    id: id.clone(),
                    new_slot: Some(slot(CHEN, free_slot)),
                })
                .await
                .map(|_| ()),
            ),
            (
                DAWA,
                "scheduling.record_consent",
                dawa.record_consent(pb::RecordConsentRequest {
                    id: id.clone(),
                    consent: Some(super::written_consent()),
                })
                .await
                .map(|_| ()),
            ),
            (
                DAWA,
                "scheduling.invite_participant",
                dawa.invite_participant(pb::InviteParticipantRequest {
                    id: id.clone(),
                    user_id: NORBU.into(),
                })
                .await
                .map(|_| ()),
            ),
        ];
        let refusals = app
            .audit_records()
            .await
            .into_iter()
            .filter(|r| {
                r.entry.target == target(consultation) && r.entry.outcome == Outcome::Invalid
            })
            .count();
        assert_eq!(refusals, attempts.len(), "every refusal is recorded");
        for (caller, action, result) in attempts {
            let status = result.expect_err(action);
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{action} of a {state} consultation by {caller}: {status:?}"
            );
            assert!(
                status.message().contains(state),
                "{action}: {:?} does not name {state}",
                status.message()
            );
        }
        assert_eq!(stored(&app, &id).await, before, "{state} is unchanged");
    }
    assert_chain_intact(&app).await;
    app.stop().await;
}
