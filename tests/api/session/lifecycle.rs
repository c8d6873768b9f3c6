//! The lifecycle hooks of a live session: the first admitted join starts it; the
//! doctor ending it, or everyone staying away for the grace period, ends it.

use teleconsult::audit::Outcome;

use super::*;

/// The test relay's grace period (`helpers::test_relay_settings`).
const GRACE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_away_for_the_grace_period_ends_the_session() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::Scheduled
    );

    let nurse = join(&app, NURSE, &id).await;
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );
    let doctor = join(&app, DOCTOR, &id).await;
    media_flows(&[&nurse, &doctor], &Counts::new()).await;

    // Both leave; the session waits for them for the grace period, then ends.
    let left = tokio::time::Instant::now();
    nurse.leave().await;
    doctor.leave().await;
    assert!(logged(&app, &id, "session.leave", 2).await);
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession,
        "the session ended before the grace period"
    );
    let mut current = ConsultationState::InSession;
    while current == ConsultationState::InSession && left.elapsed() < GRACE + PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        current = state(&app, &consultation.id).await;
    }
    assert_eq!(current, ConsultationState::AwaitingReport);
    assert!(
        left.elapsed() >= GRACE,
        "ended {:?} after everyone left, before the grace period",
        left.elapsed()
    );

    let end = session_log(&app, &id)
        .await
        .into_iter()
        .find(|e| e.action == "session.end")
        .expect("the end is logged");
    assert_eq!(end.actor.user, "system:relay", "{end:?}");
    assert!(app.store.verify_audit().await.unwrap().is_intact());
}

/// The nurse and the doctor open the room at the same moment (both pressed "join" when
/// the consult was due): both are admitted and the session starts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_joining_together_are_all_admitted_and_start_it_once() {
    // The race is a matter of timing, so it is run a few times.
    for _ in 0..4 {
        let app = TestApp::spawn().await;
        let consultation = consultation(&app, time::Duration::minutes(5), true).await;
        let id = consultation.id.to_string();
        invite(&app, &id, INTERPRETER).await;
        let joins = [NURSE, DOCTOR, INTERPRETER].map(|user| {
            let channel = app.channel_as(user);
            let id = id.clone();
            tokio::spawn(async move {
                Participant::join(channel, user, &id, SyntheticMedia::default()).await
            })
        });
        let mut everyone = Vec::new();
        for join in joins {
            match join.await.expect("the join task") {
                Ok(participant) => everyone.push(participant),
                Err(status) => panic!("a participant joining together was refused: {status:?}"),
            }
        }
        assert_eq!(
            state(&app, &consultation.id).await,
            ConsultationState::InSession
        );
        let log = session_log(&app, &id).await;
        let starts = log.iter().filter(|e| e.action == "session.start").count();
        let joins = log.iter().filter(|e| e.action == "session.join").count();
        assert_eq!((starts, joins), (1, 3), "{log:#?}");
        media_flows(&everyone.iter().collect::<Vec<_>>(), &Counts::new()).await;
        for participant in &everyone {
            participant.leave().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_counts_from_the_last_departure() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    // The nurse's connection drops, and comes back within the grace period...
    let nurse = join(&app, NURSE, &id).await;
    nurse.leave().await;
    assert!(logged(&app, &id, "session.leave", 1).await);
    // Not waiting for readiness: letting part of the grace period pass.
    tokio::time::sleep(GRACE / 2).await;
    let nurse = join(&app, NURSE, &id).await;
    // ...and drops again: the session waits a whole grace period from now.
    let last_left = tokio::time::Instant::now();
    nurse.leave().await;
    assert!(logged(&app, &id, "session.leave", 2).await);
    let mut current = ConsultationState::InSession;
    while current == ConsultationState::InSession && last_left.elapsed() < GRACE + PATIENCE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        current = state(&app, &consultation.id).await;
    }
    assert_eq!(current, ConsultationState::AwaitingReport);
    assert!(
        last_left.elapsed() >= GRACE,
        "the session ended {:?} after the last departure, within the {GRACE:?} grace period",
        last_left.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_assigned_doctor_ends_the_session_for_everyone() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    invite(&app, &id, INTERPRETER).await;
    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    let interpreter = join(&app, INTERPRETER, &id).await;
    let everyone = [&nurse, &doctor, &interpreter];
    // A consult in progress: every offer answered, media flowing. (`Relay::end`
    // forgets the room before it closes it, so a participant whose answer arrives in
    // between is told it "is not in the session" instead of why the session ended.)
    media_flows(&everyone, &Counts::new()).await;

    // The nurse may not end it: refused, audited, nothing changes.
    let refused = SessionServiceClient::new(app.channel_as(NURSE))
        .end_session(EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let denied: Vec<_> = session_log(&app, &id)
        .await
        .into_iter()
        .filter(|e| e.action == "session.end")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].outcome, Outcome::Denied);
    assert_eq!(denied[0].actor.user, NURSE);
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );
    assert!(everyone.iter().all(|p| !ended(p)));

    // The doctor ends it: every participant's stream gets `ended`.
    SessionServiceClient::new(app.channel_as(DOCTOR))
        .end_session(EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::AwaitingReport
    );
    for participant in everyone {
        assert!(
            receives(participant, |e| matches!(e, Out::Ended(ended)
                if ended.reason.contains("doctor ended")))
            .await,
            "{} was not told the session ended: {:?}",
            participant.user,
            events(participant).await
        );
        assert!(eventually(PATIENCE, || ended(participant)).await);
    }
    let ends: Vec<_> = session_log(&app, &id)
        .await
        .into_iter()
        .filter(|e| e.action == "session.end" && e.outcome == Outcome::Ok)
        .collect();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert_eq!(ends[0].actor.user, DOCTOR);

    // An ended session cannot be joined again.
    let again = Participant::join(app.channel_as(NURSE), NURSE, &id, SyntheticMedia::default())
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(again, Some(Code::FailedPrecondition));
}

/// A session left in progress by a broker that stopped (nobody ended it, and no room
/// holds it any more) ends once its log has been silent for the set time; a live one
/// beside it, whose log the relay keeps writing, goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_abandoned_in_progress_ends_and_a_live_one_goes_on() {
    use teleconsult::scheduler::{Scheduler, SchedulerSettings};

    let app = TestApp::spawn().await;
    let live = consultation(&app, time::Duration::minutes(5), true).await;
    let live_id = live.id.to_string();
    let nurse = join(&app, NURSE, &live_id).await;
    let doctor = join(&app, DOCTOR, &live_id).await;
    media_flows(&[&nurse, &doctor], &Counts::new()).await;

    // Started by a broker that then died: in session, with no room anywhere.
    let left = consultation_with(&app, "zjpph-altitude-li", time::Duration::minutes(5), true).await;
    teleconsult::relay::lifecycle::start_session(
        &app.store,
        &app.events,
        &left.id,
        Actor::system("relay"),
    )
    .await
    .unwrap();

    // The test relay logs quality every second; six silent seconds is abandoned (a loaded
    // machine may delay a write, but not by six seconds).
    let scheduler = Scheduler::new(
        app.store.clone(),
        app.events.clone(),
        SchedulerSettings {
            abandoned_session: Duration::from_secs(6),
            ..SchedulerSettings::default()
        },
    );
    let report = scheduler
        .sweep(teleconsult::audit::now_micros())
        .await
        .unwrap();
    assert_eq!(report.abandoned, 0, "nothing is silent yet");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let report = scheduler
        .sweep(teleconsult::audit::now_micros())
        .await
        .unwrap();
    assert_eq!(report.abandoned, 1);

    assert_eq!(
        state(&app, &left.id).await,
        ConsultationState::AwaitingReport
    );
    let end = session_log(&app, &left.id.to_string())
        .await
        .into_iter()
        .find(|e| e.action == "session.end")
        .expect("the end is logged");
    assert_eq!(end.actor.user, "system:scheduler");
    assert!(end.details.contains("stopped without ending it"), "{end:?}");

    assert_eq!(state(&app, &live.id).await, ConsultationState::InSession);
    assert!(![&nurse, &doctor].iter().any(|p| ended(p)));
    media_flows(&[&nurse, &doctor], &snapshot(&[&nurse, &doctor])).await;
}
