//! Three participants: the nurse, the cardiologist and an interpreter the doctor
//! invited; one leaves and rejoins, and the room renegotiates each time.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_one_leaving_and_rejoining() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    invite(&app, &id, INTERPRETER).await;

    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    let interpreter = join(&app, INTERPRETER, &id).await;
    // Everyone receives audio and video from both others.
    media_flows(&[&nurse, &doctor, &interpreter], &Counts::new()).await;
    let joined = events(&interpreter).await;
    let Some(Out::Joined(welcome)) = joined.first() else {
        panic!("the first message is not joined: {joined:?}");
    };
    let mut present: Vec<_> = welcome
        .participants
        .iter()
        .map(|p| (p.user_id.as_str(), p.role.as_str()))
        .collect();
    present.sort_unstable();
    assert_eq!(present, [(NURSE, "clinic_side"), (DOCTOR, "doctor")]);

    // The interpreter leaves: the others are told, stop receiving the interpreter's
    // tracks through a renegotiation, and keep talking to each other.
    let before_leave = [events(&nurse).await.len(), events(&doctor).await.len()];
    interpreter.leave().await;
    for (remaining, seen) in [&nurse, &doctor].into_iter().zip(before_leave) {
        let told = eventually(PATIENCE, || {
            let Ok(events) = remaining.events.try_lock() else {
                return false;
            };
            let after = &events[seen..];
            let left = after
                .iter()
                .position(|e| matches!(e, Out::ParticipantLeft(p) if p.user_id == INTERPRETER));
            let unpublished = |kind: &str| {
                after.iter().any(|e| {
                    matches!(e, Out::TrackUnpublished(t)
                        if t.participant_user_id == INTERPRETER
                            && t.stream_id == INTERPRETER
                            && t.kind == kind)
                })
            };
            left.is_some_and(|at| offers(&after[at..]) > 0)
                && unpublished("audio")
                && unpublished("video")
        })
        .await;
        assert!(
            told,
            "{} was not told of the departure and renegotiated: {:?}",
            remaining.user,
            &events(remaining).await[seen..]
        );
    }
    media_flows(&[&nurse, &doctor], &snapshot(&[&nurse, &doctor])).await;
    // Nothing more arrives from the interpreter once the offer without the
    // interpreter's tracks is answered.
    let after_leave = [from(&nurse, INTERPRETER), from(&doctor, INTERPRETER)];
    media_flows(&[&nurse, &doctor], &snapshot(&[&nurse, &doctor])).await;
    assert_eq!(
        [from(&nurse, INTERPRETER), from(&doctor, INTERPRETER)],
        after_leave
    );

    // The interpreter comes back: the others are offered the new tracks
    // (renegotiation on join) and everyone receives everyone again.
    let before_rejoin = [
        offers(&events(&nurse).await),
        offers(&events(&doctor).await),
    ];
    let interpreter = join(&app, INTERPRETER, &id).await;
    media_flows(
        &[&nurse, &doctor, &interpreter],
        &snapshot(&[&nurse, &doctor, &interpreter]),
    )
    .await;
    for (remaining, offered) in [&nurse, &doctor].into_iter().zip(before_rejoin) {
        let events = events(remaining).await;
        assert!(
            offers(&events) > offered,
            "{} got no new offer when the interpreter rejoined",
            remaining.user
        );
        for kind in ["audio", "video"] {
            assert!(
                events.iter().any(|e| matches!(e, Out::TrackPublished(t)
                    if t.participant_user_id == INTERPRETER && t.kind == kind)),
                "{} was not told of the interpreter's {kind}",
                remaining.user
            );
        }
        assert!(
            events
                .iter()
                .filter(|e| matches!(e, Out::ParticipantJoined(p) if p.user_id == INTERPRETER))
                .count()
                >= 2,
            "{} was not told of both of the interpreter's joins",
            remaining.user
        );
    }
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );
}
