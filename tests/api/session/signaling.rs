//! Signaling beyond offers and answers: mute state, and what the broker does with
//! messages it cannot accept.

use teleconsult::audit::Outcome;
use teleconsult::proto::v1::signal_request::Message as In;
use teleconsult::proto::v1::{JoinSession, MuteState, SessionDescription, SignalRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_muting_is_announced_to_the_others() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    invite(&app, &id, INTERPRETER).await;
    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    let interpreter = join(&app, INTERPRETER, &id).await;

    nurse
        .send(In::Mute(MuteState {
            audio_muted: true,
            video_muted: false,
        }))
        .await;
    let muted = |e: &Out| {
        matches!(e, Out::Mute(m) if m.user_id == NURSE
            && m.state == Some(MuteState { audio_muted: true, video_muted: false }))
    };
    for other in [&doctor, &interpreter] {
        assert!(
            receives(other, muted).await,
            "{} was not told the nurse muted: {:?}",
            other.user,
            events(other).await
        );
    }
    // Not echoed to the one who muted.
    assert!(
        !events(&nurse)
            .await
            .iter()
            .any(|e| matches!(e, Out::Mute(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_an_offer_ends_only_that_participant() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    invite(&app, &id, INTERPRETER).await;
    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    let interpreter = join(&app, INTERPRETER, &id).await;
    // Media flowing on every track means every offer so far has been answered.
    media_flows(&[&nurse, &doctor, &interpreter], &Counts::new()).await;

    let sdp = interpreter
        .pc
        .local_description()
        .await
        .expect("the interpreter has answered")
        .sdp;
    interpreter
        .send(In::Description(SessionDescription {
            r#type: "answer".into(),
            sdp,
        }))
        .await;
    assert!(
        receives(&interpreter, |e| matches!(e, Out::Ended(ended)
            if ended.reason.contains("no offer is waiting for an answer")))
        .await,
        "the interpreter was not told why: {:?}",
        events(&interpreter).await
    );
    assert!(eventually(PATIENCE, || ended(&interpreter)).await);

    // The others see the interpreter leave and carry on.
    for other in [&nurse, &doctor] {
        assert!(
            receives(
                other,
                |e| matches!(e, Out::ParticipantLeft(p) if p.user_id == INTERPRETER)
            )
            .await
        );
        assert!(!ended(other));
    }
    media_flows(&[&nurse, &doctor], &snapshot(&[&nurse, &doctor])).await;
    let leave = session_log(&app, &id)
        .await
        .into_iter()
        .find(|e| e.action == "session.leave" && e.actor.user == INTERPRETER)
        .expect("the interpreter's departure is logged");
    assert!(leave.details.contains("signaling error"), "{leave:?}");
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );
}

/// Opens a Join stream as `user` whose first message is `first`, and returns what the
/// broker answered.
async fn open_with(app: &TestApp, user: &str, first: In) -> Result<(), tonic::Status> {
    let (requests, outgoing) = mpsc::channel(4);
    requests
        .send(SignalRequest {
            message: Some(first),
        })
        .await
        .unwrap();
    let mut stream = SessionServiceClient::new(app.channel_as(user))
        .join(ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    stream.message().await?;
    drop(requests);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_stream_must_start_by_naming_a_known_consultation() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();

    let not_join = open_with(
        &app,
        NURSE,
        In::Mute(MuteState {
            audio_muted: true,
            video_muted: true,
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(not_join.code(), Code::InvalidArgument, "{not_join:?}");
    assert!(not_join.message().contains("message"), "{not_join:?}");

    let unknown = ConsultationId::from_random([0x5a; 10]).to_string();
    let missing = open_with(
        &app,
        NURSE,
        In::Join(JoinSession {
            consultation_id: unknown,
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    let malformed = open_with(
        &app,
        NURSE,
        In::Join(JoinSession {
            consultation_id: "consultation-42".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert!(
        malformed.message().contains("join.consultation_id"),
        "{malformed:?}"
    );

    // None of them touched the real consultation, and each was audited.
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::Scheduled
    );
    let refused: Vec<Outcome> = app
        .audit_records()
        .await
        .into_iter()
        .map(|r| r.entry)
        .filter(|e| e.action == "session.join" && e.actor.user == NURSE)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().all(|o| *o != Outcome::Ok), "{refused:?}");
    assert!(
        session_log(&app, &id)
            .await
            .iter()
            .all(|e| !e.action.starts_with("session.")),
        "the consultation's log mentions a session"
    );
}
