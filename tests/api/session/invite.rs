//! The doctor invites an interpreter into a running session.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_invited_mid_session_joins_and_receives_the_tracks() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    media_flows(&[&nurse, &doctor], &Counts::new()).await;
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );

    // Not yet invited: refused, and the running session is not disturbed.
    let refused = Participant::join(
        app.channel_as(INTERPRETER),
        INTERPRETER,
        &id,
        SyntheticMedia::default(),
    )
    .await
    .err()
    .map(|status| status.code());
    assert_eq!(refused, Some(Code::PermissionDenied));

    invite(&app, &id, INTERPRETER).await;
    let interpreter = join(&app, INTERPRETER, &id).await;
    media_flows(
        &[&nurse, &doctor, &interpreter],
        &snapshot(&[&nurse, &doctor]),
    )
    .await;
    for other in [&nurse, &doctor] {
        assert!(
            receives(
                other,
                |e| matches!(e, Out::ParticipantJoined(p) if p.user_id == INTERPRETER && p.role == "interpreter")
            )
            .await,
            "{} was not told the interpreter joined",
            other.user
        );
    }
    // The interpreter is told of both tracks of both others.
    let told = events(&interpreter).await;
    for publisher in [NURSE, DOCTOR] {
        for kind in ["audio", "video"] {
            assert!(
                told.iter().any(|e| matches!(e, Out::TrackPublished(t)
                    if t.participant_user_id == publisher && t.stream_id == publisher && t.kind == kind)),
                "the interpreter was not told of {publisher}'s {kind}: {told:?}"
            );
        }
    }

    let refusals: Vec<_> = session_log(&app, &id)
        .await
        .into_iter()
        .filter(|e| e.action == "session.join" && e.actor.user == INTERPRETER)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        refusals,
        [
            teleconsult::audit::Outcome::Denied,
            teleconsult::audit::Outcome::Ok
        ]
    );
}
