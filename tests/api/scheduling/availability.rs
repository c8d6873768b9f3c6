//! Weekly availability: published by the doctor or an admin of their institution, read
//! back as written, checked interval by interval.

use teleconsult::audit::Outcome;
use teleconsult::proto::v1 as pb;
use time::Duration;
use tonic::Code;

use super::{
    BIRU_ADMIN, CHEN, DAWA, LI, PLATFORM_ADMIN, ZHOU, ZJU2_ADMIN, availability, free_starts,
    interval, local, monday_ahead, only_record, refused, ts, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

fn set(availability: pb::Availability) -> pb::SetAvailabilityRequest {
    pb::SetAvailabilityRequest {
        availability: Some(availability),
    }
}

async fn get(app: &TestApp, doctor: &str) -> pb::Availability {
    app.scheduling_as(DAWA)
        .get_availability(pb::GetAvailabilityRequest {
            doctor_id: doctor.into(),
        })
        .await
        .expect("availability is public")
        .into_inner()
}

#[tokio::test]
async fn weekly_hours_and_exceptions_round_trip() {
    let app = TestApp::spawn().await;
    let monday = monday_ahead(0);
    // Leave on the first hour of Monday morning.
    let leave = pb::AvailabilityException {
        start: Some(ts(local(monday, 9, 0))),
        end: Some(ts(local(monday, 10, 0))),
        reason: "ward round".into(),
    };
    let mut hours = availability(CHEN, usual_week(), true);
    hours.exceptions = vec![leave];

    let head = audit_head(&app).await;
    let answer = app
        .scheduling_as(CHEN)
        .set_availability(set(hours.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer, hours);
    let record = only_record(
        &audit_since(&app, head).await,
        CHEN,
        "scheduling.set_availability",
        "user:zju2-cardio-chen",
        Outcome::Ok,
    );
    assert_eq!(
        record.entry.target_institution.as_deref(),
        Some(super::ZJU2)
    );

    assert_eq!(get(&app, CHEN).await, hours, "read back as written");
    // Someone who has published nothing offers nothing.
    assert_eq!(get(&app, LI).await, availability(LI, vec![], false));
    // Only specialists have hours.
    refused(
        app.scheduling_as(DAWA)
            .get_availability(pb::GetAvailabilityRequest {
                doctor_id: DAWA.into(),
            })
            .await,
        Code::NotFound,
        DAWA,
    );

    // The leave takes the first two of Monday morning's six slots.
    let starts = free_starts(&app, CHEN, local(monday, 6, 0), local(monday, 23, 0)).await;
    let expected: Vec<_> = (0..4)
        .map(|i| local(monday, 10, 0) + Duration::minutes(30 * i))
        .collect();
    assert_eq!(starts, expected);
    assert_chain_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_doctor_and_admins_of_their_institution_set_it_and_nobody_else() {
    let app = TestApp::spawn().await;
    let cases = [
        // (caller, allowed)
        (CHEN, true),
        (ZJU2_ADMIN, true),
        (PLATFORM_ADMIN, true),
        (BIRU_ADMIN, false),
        (DAWA, false),
        (ZHOU, false),
        (LI, false),
        (super::NORBU, false),
    ];
    for (i, (caller, allowed)) in cases.into_iter().enumerate() {
        // Each allowed caller publishes a different week, so that the change shows.
        let week = vec![interval(1 + i as u32 % 7, 8 * 60, 9 * 60)];
        let before = get(&app, CHEN).await;
        let head = audit_head(&app).await;
        let result = app
            .scheduling_as(caller)
            .set_availability(set(availability(CHEN, week.clone(), false)))
            .await;
        let records = audit_since(&app, head).await;
        if allowed {
            assert_eq!(result.unwrap().into_inner().weekly, week, "{caller}");
            only_record(
                &records,
                caller,
                "scheduling.set_availability",
                "user:zju2-cardio-chen",
                Outcome::Ok,
            );
            assert_eq!(get(&app, CHEN).await.weekly, week, "{caller}");
        } else {
            refused(result, Code::PermissionDenied, "");
            only_record(
                &records,
                caller,
                "scheduling.set_availability",
                "user:zju2-cardio-chen",
                Outcome::Denied,
            );
            assert_eq!(get(&app, CHEN).await, before, "{caller} changed nothing");
        }
    }
    assert_chain_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_intervals_are_refused_naming_the_interval() {
    let app = TestApp::spawn().await;
    super::publish(&app, CHEN, usual_week(), false).await;
    let before = get(&app, CHEN).await;
    let cases = [
        (
            "weekday 8",
            vec![interval(1, 540, 600), interval(8, 540, 600)],
            "availability.weekly[1]",
        ),
        (
            "weekday 0",
            vec![interval(0, 540, 600)],
            "availability.weekly[0]",
        ),
        (
            "minutes not a multiple of 5",
            vec![interval(2, 540, 600), interval(3, 543, 600)],
            "availability.weekly[1]",
        ),
        (
            "end before start",
            vec![interval(4, 600, 540)],
            "availability.weekly[0]",
        ),
        (
            "longer than a day",
            vec![interval(5, 600, 600 + 1445)],
            "availability.weekly[0]",
        ),
        (
            "overlapping on Monday",
            vec![interval(1, 540, 720), interval(1, 600, 660)],
            "availability.weekly",
        ),
        (
            "Sunday night running into Monday morning",
            vec![interval(7, 22 * 60, 26 * 60), interval(1, 60, 120)],
            "availability.weekly",
        ),
    ];
    for (case, weekly, field) in cases {
        let head = audit_head(&app).await;
        let status = refused(
            app.scheduling_as(CHEN)
                .set_availability(set(availability(CHEN, weekly, false)))
                .await,
            Code::InvalidArgument,
            field,
        );
        assert!(
            status.message().starts_with(field),
            "{case}: {:?}",
            status.message()
        );
        only_record(
            &audit_since(&app, head).await,
            CHEN,
            "scheduling.set_availability",
            "-",
            Outcome::Invalid,
        );
        assert_eq!(get(&app, CHEN).await, before, "{case} changed nothing");
    }
    assert_chain_intact(&app).await;
    app.stop().await;
}

/// A clinic that sends two overlapping intervals needs to know which one to fix.
#[tokio::test]
async fn overlapping_intervals_name_the_interval_that_overlaps() {
    let app = TestApp::spawn().await;
    let status = refused(
        app.scheduling_as(CHEN)
            .set_availability(set(availability(
                CHEN,
                vec![
                    interval(2, 540, 600),
                    interval(1, 540, 720),
                    interval(1, 600, 660),
                ],
                false,
            )))
            .await,
        Code::InvalidArgument,
        "",
    );
    // Either of the pair will do.
    let named = ["availability.weekly[1]", "availability.weekly[2]"]
        .iter()
        .any(|field| status.message().starts_with(field));
    assert!(named, "{:?}", status.message());
    app.stop().await;
}
