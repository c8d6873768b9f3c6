//! `Timeline`: one consultation's story, oldest first, for the admins of the two
//! institutions it joins (and the platform's), and for nobody else.

use teleconsult::audit::Outcome;
use teleconsult::auth::pki::ClientSubject;
use teleconsult::domain::directory::Role;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::EndSessionRequest;
use teleconsult::proto::v1::audit_service_client::AuditServiceClient;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::relay::synthetic::{SyntheticMedia, SyntheticParticipant as Participant};
use tonic::Code;

use super::{assert_same, audit_as, history};
use crate::directory::{audit_head, audit_since};
use crate::helpers::TestApp;
use crate::scheduling::{
    BIRU_ADMIN, CHEN, DAWA, DROLMA, PATIENCE, PLATFORM_ADMIN, UTC_PLUS_8, ZJU2_ADMIN, add_people,
    booking, completed, interval, local, monday_ahead, only_record, publish, record_consent,
    refused, search, user,
};

on_both_backends!(
    a_timeline_tells_the_consultation_in_order,
    a_live_session_shows_in_the_timeline,
    only_the_admins_of_its_two_institutions_read_a_timeline,
);

fn timeline_request(consultation: &pb::Consultation) -> pb::TimelineRequest {
    pb::TimelineRequest {
        consultation_id: consultation.id.clone(),
    }
}

async fn a_timeline_tells_the_consultation_in_order(app: TestApp) {
    let consulted = history(&app).await;
    let target = format!("consultation:{}", consulted.id);
    let timeline = audit_as(&app, BIRU_ADMIN)
        .timeline(timeline_request(&consulted))
        .await
        .unwrap()
        .into_inner()
        .records;
    let story: Vec<(&str, &str, i32)> = timeline
        .iter()
        .map(|r| (r.actor_user_id.as_str(), r.action.as_str(), r.outcome))
        .collect();
    let (ok, denied) = (pb::Outcome::Ok as i32, pb::Outcome::Denied as i32);
    assert_eq!(
        story,
        [
            (DAWA, "scheduling.book_consultation", ok),
            (CHEN, "scheduling.accept_consultation", ok),
            (DAWA, "scheduling.record_consent", ok),
            (DROLMA, "scheduling.get_consultation", denied),
        ]
    );
    let stored: Vec<_> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.entry.target == target)
        .collect();
    assert_eq!(timeline.len(), stored.len());
    for (answered, stored) in timeline.iter().zip(&stored) {
        assert_same(answered, stored);
    }

    // A consultation taken through its session to a signed opinion: the session's
    // records and the opinion's seal, with the report's content hash, follow in order.
    let done = completed(&app, local(monday_ahead(1), 9, 0)).await;
    let timeline = audit_as(&app, ZJU2_ADMIN)
        .timeline(timeline_request(&done))
        .await
        .unwrap()
        .into_inner()
        .records;
    let actions: Vec<&str> = timeline.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "scheduling.book_consultation",
            "scheduling.accept_consultation",
            "scheduling.record_consent",
            "session.start",
            "session.end",
            "scheduling.file_opinion",
            "scheduling.sign_opinion",
        ]
    );
    assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq));
    let opinion = app
        .scheduling_as(DAWA)
        .get_opinion(pb::GetOpinionRequest {
            consultation_id: done.id.clone(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let seal = timeline.last().unwrap();
    let details: serde_json::Value = serde_json::from_str(&seal.details).unwrap();
    assert_eq!(details["content_hash"], opinion.content_hash.as_str());
    assert_eq!(opinion.seal.as_ref().map(|s| s.seq), Some(seal.seq));
    app.stop().await;
}

async fn only_the_admins_of_its_two_institutions_read_a_timeline(app: TestApp) {
    let consulted = history(&app).await;
    let target = format!("consultation:{}", consulted.id);
    for admin in [BIRU_ADMIN, ZJU2_ADMIN, PLATFORM_ADMIN] {
        let records = audit_as(&app, admin)
            .timeline(timeline_request(&consulted))
            .await
            .unwrap_or_else(|status| panic!("{admin} reads the timeline: {status:?}"))
            .into_inner()
            .records;
        assert_eq!(records.len(), 4, "{admin}");
    }

    // The admin of an institution that has nothing to do with it.
    add_people(
        &app,
        vec![user("zjpph-admin", "zj-provincial", Role::Admin)],
        vec![],
    )
    .await;
    let certificate = app.certificate(&ClientSubject {
        user: "zjpph-admin".into(),
        institution: "zj-provincial".into(),
        role: "admin".into(),
    });
    let mut outsider = AuditServiceClient::new(app.channel_with(&certificate));
    let head = audit_head(&app).await;
    refused(
        outsider.timeline(timeline_request(&consulted)).await,
        Code::PermissionDenied,
        "",
    );
    only_record(
        &audit_since(&app, head).await,
        "zjpph-admin",
        "audit.timeline",
        &target,
        Outcome::Denied,
    );

    let status = audit_as(&app, BIRU_ADMIN)
        .timeline(pb::TimelineRequest {
            consultation_id: "c-00000000000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    app.stop().await;
}

/// Booked through the API for a slot starting in a quarter of an hour or so, accepted
/// and consented to, so that the session may begin at once.
async fn booked_for_now(app: &TestApp) -> pb::Consultation {
    let now = time::OffsetDateTime::now_utc();
    let soon = (now + time::Duration::minutes(10)).to_offset(UTC_PLUS_8);
    let minute = (u32::from(soon.hour()) * 60 + u32::from(soon.minute())) / 5 * 5 + 5;
    let mut weekday = u32::from(soon.weekday().number_from_monday());
    // Just before local midnight the hour begins on the next day.
    let minute = if minute >= 24 * 60 {
        weekday = weekday % 7 + 1;
        minute - 24 * 60
    } else {
        minute
    };
    publish(
        app,
        CHEN,
        vec![interval(weekday, minute, minute + 60)],
        false,
    )
    .await;
    let slots = search(app, CHEN, now, now + time::Duration::hours(3)).await;
    let first = slots.first().expect("a slot in the coming hour").clone();
    let booked = book_scheduled_slot(app, first).await;
    record_consent(app, &booked.id).await
}

async fn book_scheduled_slot(app: &TestApp, slot: pb::Slot) -> pb::Consultation {
    let booked = crate::scheduling::book(app, DAWA, booking(slot)).await;
    app.scheduling_as(CHEN)
        .accept_consultation(pb::AcceptConsultationRequest { id: booked.id })
        .await
        .expect("the assigned doctor accepts")
        .into_inner()
}

async fn timeline_of(app: &TestApp, id: &str) -> Vec<pb::AuditRecord> {
    audit_as(app, BIRU_ADMIN)
        .timeline(pb::TimelineRequest {
            consultation_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

async fn a_live_session_shows_in_the_timeline(app: TestApp) {
    let consultation = booked_for_now(&app).await;
    let id = consultation.id.clone();
    let join = |user: &'static str| {
        Participant::join(app.channel_as(user), user, &id, SyntheticMedia::default())
    };
    let nurse = join(DAWA).await.expect("the nurse joins");
    let doctor = join(CHEN).await.expect("the doctor joins");

    // Quality summaries come every second in tests; wait for one of each.
    let periodic = |records: &[pb::AuditRecord], user: &str| {
        records.iter().any(|r| {
            let details: serde_json::Value = serde_json::from_str(&r.details).unwrap();
            r.action == "session.quality" && details["quality"]["participant"] == user
        })
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut records = timeline_of(&app, &id).await;
    while !(periodic(&records, DAWA) && periodic(&records, CHEN))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        records = timeline_of(&app, &id).await;
    }
    nurse.leave().await;
    SessionServiceClient::new(app.channel_as(CHEN))
        .end_session(EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .expect("the doctor ends the session");

    let records = timeline_of(&app, &id).await;
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    let target = format!("consultation:{id}");
    assert!(records.iter().all(|r| r.target == target));
    let first = |action: &str, user: Option<&str>| {
        records
            .iter()
            .position(|r| r.action == action && user.is_none_or(|u| r.actor_user_id == u))
            .unwrap_or_else(|| panic!("{action} by {user:?} in the timeline: {records:#?}"))
    };
    let order = [
        first("scheduling.book_consultation", Some(DAWA)),
        first("scheduling.accept_consultation", Some(CHEN)),
        first("scheduling.record_consent", Some(DAWA)),
        first("session.start", None),
        first("session.join", Some(DAWA)),
        first("session.join", Some(CHEN)),
        first("session.leave", Some(DAWA)),
        first("session.end", Some(CHEN)),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?}: {records:#?}"
    );
    assert!(
        periodic(&records, DAWA) && periodic(&records, CHEN),
        "{records:#?}"
    );
    let connected = |user: &str| {
        records.iter().any(|r| {
            r.action == "session.ice_state"
                && r.details.contains(&format!("\"participant\":\"{user}\""))
                && r.details.contains("\"state\":\"connected\"")
        })
    };
    assert!(connected(DAWA) && connected(CHEN), "{records:#?}");
    let (join, quality) = (
        first("session.join", Some(CHEN)),
        first("session.quality", None),
    );
    assert!(join < quality && quality < first("session.end", Some(CHEN)));
    // The doctor leaves too: a signaling stream left open after the session ended
    // currently keeps `server::run` from returning when the app stops.
    doctor.leave().await;
    app.stop().await;
}
