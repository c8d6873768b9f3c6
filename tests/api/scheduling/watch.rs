//! `Watch`: each caller hears, in order, of the changes to the consultations they may
//! see and of no others; the streams end when the server stops.

use std::time::{Duration as StdDuration, Instant};

use teleconsult::proto::v1 as pb;
use tonic::Streaming;

use super::{
    BIRU_ADMIN, CHEN, DAWA, DROLMA, NORBU, OPHTHALMOLOGY, PLATFORM_ADMIN, ZHOU, ZJU2_ADMIN, book,
    booking, kind_of, local, monday_ahead, next_event, publish, slot, state_of, usual_week, watch,
};
use crate::helpers::TestApp;

use pb::ConsultationState::{Cancelled, Requested, Scheduled};
use pb::consultation_event::Kind::{Changed, Created};

/// What one event should say: its kind, which consultation, its state and version.
type Expected<'a> = (
    pb::consultation_event::Kind,
    &'a str,
    pb::ConsultationState,
    u64,
);

/// Reads as many events as `expected` holds and compares them, in order.
async fn assert_events(
    who: &str,
    stream: &mut Streaming<pb::ConsultationEvent>,
    expected: &[Expected<'_>],
) {
    let mut seen = Vec::new();
    for _ in expected {
        let event = next_event(stream).await;
        let consultation = event.consultation.clone().unwrap();
        let state = state_of(&consultation);
        seen.push((
            kind_of(&event),
            consultation.id,
            state,
            consultation.version,
        ));
    }
    let seen: Vec<Expected<'_>> = seen
        .iter()
        .map(|(k, id, s, v)| (*k, id.as_str(), *s, *v))
        .collect();
    assert_eq!(seen, expected, "{who}'s events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_watcher_hears_of_their_consultations_only_and_in_order() {
    let app = TestApp::spawn().await;
    publish(&app, CHEN, usual_week(), false).await;
    publish(&app, ZHOU, usual_week(), false).await;
    let watchers = [
        DAWA,
        DROLMA,
        CHEN,
        ZHOU,
        NORBU,
        BIRU_ADMIN,
        ZJU2_ADMIN,
        PLATFORM_ADMIN,
    ];
    let mut streams = Vec::new();
    for watcher in watchers {
        streams.push(watch(&app, watcher).await);
    }
    let start = local(monday_ahead(0), 9, 0);

    // 1. Nagqu books the ophthalmologist.
    let eyes = book(
        &app,
        DROLMA,
        pb::BookConsultationRequest {
            specialty: OPHTHALMOLOGY.into(),
            ..booking(slot(ZHOU, start))
        },
    )
    .await;
    // 2. Biru books the cardiologist, 3. who accepts, 4. Biru invites its interpreter.
    let heart = book(&app, DAWA, booking(slot(CHEN, start))).await;
    let mut chen = app.scheduling_as(CHEN);
    chen.accept_consultation(pb::AcceptConsultationRequest {
        id: heart.id.clone(),
    })
    .await
    .unwrap();
    let mut dawa = app.scheduling_as(DAWA);
    dawa.invite_participant(pb::InviteParticipantRequest {
        id: heart.id.clone(),
        user_id: NORBU.into(),
    })
    .await
    .unwrap();
    // 5. The ophthalmologist accepts, 6. Biru cancels, 7. Nagqu cancels.
    app.scheduling_as(ZHOU)
        .accept_consultation(pb::AcceptConsultationRequest {
            id: eyes.id.clone(),
        })
        .await
        .unwrap();
    let cancel = |id: &str| pb::CancelConsultationRequest {
        id: id.into(),
        reason: "patient evacuated to Lhasa".into(),
    };
    dawa.cancel_consultation(cancel(&heart.id)).await.unwrap();
    app.scheduling_as(DROLMA)
        .cancel_consultation(cancel(&eyes.id))
        .await
        .unwrap();

    let (h, e) = (heart.id.as_str(), eyes.id.as_str());
    let biru_side: &[Expected<'_>] = &[
        (Created, h, Requested, 1),
        (Changed, h, Scheduled, 2),
        (Changed, h, Scheduled, 3),
        (Changed, h, Cancelled, 4),
    ];
    let nagqu_side: &[Expected<'_>] = &[
        (Created, e, Requested, 1),
        (Changed, e, Scheduled, 2),
        (Changed, e, Cancelled, 3),
    ];
    let everything: &[Expected<'_>] = &[
        (Created, e, Requested, 1),
        (Created, h, Requested, 1),
        (Changed, h, Scheduled, 2),
        (Changed, h, Scheduled, 3),
        (Changed, e, Scheduled, 2),
        (Changed, h, Cancelled, 4),
        (Changed, e, Cancelled, 3),
    ];
    // Had anyone heard of a consultation not theirs, it would have come before the
    // last event they expect, since every consultation changes last.
    let expectations: [&[Expected<'_>]; 8] = [
        biru_side,
        nagqu_side,
        biru_side,
        nagqu_side,
        // The interpreter hears from the invitation on.
        &biru_side[2..],
        biru_side,
        // Zhejiang gives both opinions; the platform sees everything.
        everything,
        everything,
    ];
    for ((watcher, stream), expected) in watchers.iter().zip(&mut streams).zip(expectations) {
        assert_events(watcher, stream, expected).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_end_when_the_server_stops() {
    let app = TestApp::spawn().await;
    publish(&app, CHEN, usual_week(), true).await;
    let mut streams = vec![watch(&app, DAWA).await, watch(&app, CHEN).await];
    book(
        &app,
        DAWA,
        booking(slot(CHEN, local(monday_ahead(0), 9, 0))),
    )
    .await;
    for stream in &mut streams {
        assert_eq!(kind_of(&next_event(stream).await), Created);
    }

    // The server's grace period is 5 s; open watches must not hold it up.
    let began = Instant::now();
    tokio::time::timeout(StdDuration::from_secs(4), app.stop())
        .await
        .expect("the server stops promptly with watches open");
    assert!(began.elapsed() < StdDuration::from_secs(4));
    for stream in &mut streams {
        let end = tokio::time::timeout(StdDuration::from_secs(4), stream.message())
            .await
            .expect("the stream ends");
        assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    }
}
