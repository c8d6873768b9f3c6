//! Booking: clinic staff book a slot the doctor offers, for a pseudonymous patient of
//! their own institution; the slot is then taken. Anything else is refused, naming
//! what is wrong, and recorded.

use teleconsult::audit::Outcome;
use teleconsult::domain::consultation::ConsultationState;
use teleconsult::proto::v1 as pb;
use time::{Duration, OffsetDateTime};
use tonic::Code;

use super::{
    BIRU, BIRU_ADMIN, CARDIOLOGY, CHEN, DAWA, DROLMA, NORBU, OPHTHALMOLOGY, PLATFORM_ADMIN, ZHOU,
    ZJU2, ZJU2_ADMIN, all_consultations, book, booking, details, free_starts, instant, interval,
    local, monday_ahead, only_record, publish, refused, search, slot, state_of, stored, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

on_both_backends!(
    booking_a_free_slot_takes_it,
    a_doctor_who_auto_accepts_is_scheduled_at_once,
    what_the_doctor_does_not_offer_is_refused,
    patient_names_are_refused,
    only_clinic_staff_book_and_only_for_their_institution,
);

async fn booking_a_free_slot_takes_it(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let monday = monday_ahead(0);
    // Monday morning, after the Sunday night clinic.
    let (from, to) = (local(monday, 6, 0), local(monday, 23, 0));
    let offered = search(&app, CHEN, from, to).await;
    assert_eq!(offered.len(), 6, "Monday 09:00–12:00 in 30-minute slots");
    let chosen = offered[0].clone();
    assert_eq!(instant(chosen.start.as_ref()), local(monday, 9, 0));
    assert_eq!(chosen.institution_id, ZJU2);

    let head = audit_head(&app).await;
    let booked = book(&app, DAWA, booking(chosen.clone())).await;
    assert_eq!(state_of(&booked), pb::ConsultationState::Requested);
    assert_eq!(booked.urgency, pb::Urgency::Routine as i32);
    assert_eq!(
        (
            booked.doctor_id.as_str(),
            booked.consulting_institution_id.as_str(),
            booked.inviting_institution_id.as_str(),
            booked.requested_by.as_str(),
            booked.specialty.as_str(),
            booked.patient_ref.as_str(),
        ),
        (CHEN, ZJU2, BIRU, DAWA, CARDIOLOGY, "BIRU-2026-0042")
    );
    assert_eq!((booked.start, booked.end), (chosen.start, chosen.end));
    assert_eq!(booked.version, 1);
    assert!(booked.accepted_at.is_none());

    let record = only_record(
        &audit_since(&app, head).await,
        DAWA,
        "scheduling.book_consultation",
        &format!("consultation:{}", booked.id),
        Outcome::Ok,
    );
    assert_eq!(record.entry.target_institution.as_deref(), Some(BIRU));
    assert_eq!(details(&record)["doctor"], CHEN);
    assert_eq!(details(&record)["state"], "requested");

    let stored = stored(&app, &booked.id).await;
    assert_eq!(stored.state, ConsultationState::Requested);
    assert_eq!(stored.doctor.as_ref().map(|d| d.as_str()), Some(CHEN));
    assert_eq!(stored.window.map(|w| w.start()), Some(local(monday, 9, 0)));

    let free = free_starts(&app, CHEN, from, to).await;
    assert_eq!(free.len(), 5);
    assert!(!free.contains(&local(monday, 9, 0)), "the slot is taken");
    // The doctor sees the request.
    let listed = app
        .scheduling_as(CHEN)
        .list_consultations(pb::ListConsultationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .consultations;
    assert_eq!(listed, vec![booked]);
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn a_doctor_who_auto_accepts_is_scheduled_at_once(app: TestApp) {
    publish(&app, CHEN, usual_week(), true).await;
    let start = local(monday_ahead(0), 10, 0);
    let booked = book(&app, DAWA, booking(slot(CHEN, start))).await;
    assert_eq!(state_of(&booked), pb::ConsultationState::Scheduled);
    assert_eq!(booked.accepted_at, booked.created_at);
    assert_eq!(
        stored(&app, &booked.id).await.state,
        ConsultationState::Scheduled
    );
    assert!(
        !free_starts(&app, CHEN, start, start + Duration::hours(1))
            .await
            .contains(&start)
    );
    app.stop().await;
}

/// The start of the 30-minute slot in progress now.
fn current_half_hour() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now - now.rem_euclid(30 * 60)).unwrap()
}

async fn what_the_doctor_does_not_offer_is_refused(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    // Zhou works around the clock, so that a slot in the past is one he offers.
    publish(
        &app,
        ZHOU,
        (1..=7).map(|day| interval(day, 0, 24 * 60)).collect(),
        false,
    )
    .await;
    let monday = monday_ahead(0);
    let longer = pb::Slot {
        end: Some(super::ts(local(monday, 10, 0))),
        ..slot(CHEN, local(monday, 9, 0))
    };
    let ophthalmology = |start| pb::BookConsultationRequest {
        specialty: OPHTHALMOLOGY.into(),
        ..booking(slot(ZHOU, start))
    };
    let cases = [
        (
            "an hour he does not work",
            booking(slot(CHEN, local(monday, 13, 0))),
            Code::FailedPrecondition,
            "slot:",
        ),
        (
            "off the slot grid",
            booking(slot(CHEN, local(monday, 9, 15))),
            Code::FailedPrecondition,
            "slot:",
        ),
        (
            "two slots at once",
            booking(longer),
            Code::FailedPrecondition,
            "slot:",
        ),
        (
            "a Tuesday",
            booking(slot(CHEN, local(monday + Duration::days(1), 9, 0))),
            Code::FailedPrecondition,
            "slot:",
        ),
        (
            "a specialty he does not practise",
            pb::BookConsultationRequest {
                specialty: OPHTHALMOLOGY.into(),
                ..booking(slot(CHEN, local(monday, 9, 0)))
            },
            Code::FailedPrecondition,
            "specialty:",
        ),
        (
            "a slot that has ended",
            ophthalmology(current_half_hour() - Duration::minutes(30)),
            Code::FailedPrecondition,
            "slot",
        ),
        (
            "a slot in progress",
            ophthalmology(current_half_hour()),
            Code::FailedPrecondition,
            "slot",
        ),
        (
            "a doctor not in the directory",
            booking(slot("zju2-cardio-nobody", local(monday, 9, 0))),
            Code::NotFound,
            "zju2-cardio-nobody",
        ),
        (
            "a nurse's slot",
            booking(slot(DROLMA, local(monday, 9, 0))),
            Code::NotFound,
            DROLMA,
        ),
    ];
    let mut client = app.scheduling_as(DAWA);
    for (case, request, code, mentions) in cases {
        let doctor = request.slot.as_ref().unwrap().doctor_id.clone();
        let head = audit_head(&app).await;
        let status = refused(client.book_consultation(request).await, code, mentions);
        if mentions.ends_with(':') {
            assert!(status.message().starts_with(mentions), "{case}: {status:?}");
        }
        let record = only_record(
            &audit_since(&app, head).await,
            DAWA,
            "scheduling.book_consultation",
            &format!("user:{doctor}"),
            Outcome::Invalid,
        );
        assert_eq!(
            record.entry.target_institution.as_deref(),
            Some(BIRU),
            "{case}"
        );
    }
    assert!(
        all_consultations(&app).await.is_empty(),
        "nothing was booked"
    );
    assert_chain_intact(&app).await;
    app.stop().await;
}

async fn patient_names_are_refused(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let start = local(monday_ahead(0), 9, 0);
    let mut client = app.scheduling_as(DAWA);
    for name in ["Tashi Dolkar", "扎西", "བཀྲ་ཤིས་", "Dolkar,Tashi", "", "ab"] {
        let head = audit_head(&app).await;
        let request = pb::BookConsultationRequest {
            patient_ref: name.into(),
            ..booking(slot(CHEN, start))
        };
        let status = refused(
            client.book_consultation(request).await,
            Code::InvalidArgument,
            "patient_ref",
        );
        assert!(
            status.message().starts_with("patient_ref:"),
            "{name}: {status:?}"
        );
        // Neither the answer nor the log repeats a name.
        let sensitive = !name.is_ascii() || name.len() >= 4;
        assert!(!sensitive || !status.message().contains(name), "{status:?}");
        let record = only_record(
            &audit_since(&app, head).await,
            DAWA,
            "scheduling.book_consultation",
            "-",
            Outcome::Invalid,
        );
        assert!(
            !sensitive || !record.entry.details.contains(name),
            "the audit log keeps the name {name:?}: {}",
            record.entry.details
        );

        let urgent = pb::RequestUrgentConsultationRequest {
            specialty: CARDIOLOGY.into(),
            patient_ref: name.into(),
            reason: "chest pain".into(),
            case_summary: String::new(),
        };
        refused(
            client.request_urgent_consultation(urgent).await,
            Code::InvalidArgument,
            "patient_ref",
        );
    }
    assert!(all_consultations(&app).await.is_empty());
    assert!(
        free_starts(&app, CHEN, start, start + Duration::minutes(30))
            .await
            .contains(&start)
    );
    app.stop().await;
}

async fn only_clinic_staff_book_and_only_for_their_institution(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let start = local(monday_ahead(0), 9, 0);
    for caller in [CHEN, ZHOU, NORBU, BIRU_ADMIN, ZJU2_ADMIN, PLATFORM_ADMIN] {
        let head = audit_head(&app).await;
        refused(
            app.scheduling_as(caller)
                .book_consultation(booking(slot(CHEN, start)))
                .await,
            Code::PermissionDenied,
            "clinic staff",
        );
        only_record(
            &audit_since(&app, head).await,
            caller,
            "scheduling.book_consultation",
            "user:zju2-cardio-chen",
            Outcome::Denied,
        );
        let urgent = pb::RequestUrgentConsultationRequest {
            specialty: CARDIOLOGY.into(),
            patient_ref: "BIRU-2026-0042".into(),
            reason: "chest pain".into(),
            case_summary: String::new(),
        };
        refused(
            app.scheduling_as(caller)
                .request_urgent_consultation(urgent)
                .await,
            Code::PermissionDenied,
            "",
        );
    }
    assert!(all_consultations(&app).await.is_empty());

    // Staff of another clinic book for their own institution, and only they and the
    // doctor see it.
    let theirs = book(&app, DROLMA, booking(slot(CHEN, start))).await;
    assert_eq!(theirs.inviting_institution_id, "nagqu-peoples");
    refused(
        app.scheduling_as(DAWA)
            .get_consultation(pb::GetConsultationRequest {
                id: theirs.id.clone(),
            })
            .await,
        Code::PermissionDenied,
        "",
    );
    // The slot is theirs now.
    refused(
        app.scheduling_as(DAWA)
            .book_consultation(booking(slot(CHEN, start)))
            .await,
        Code::AlreadyExists,
        "",
    );
    assert_eq!(all_consultations(&app).await.len(), 1);
    assert_chain_intact(&app).await;
    app.stop().await;
}
