//! The session log: joins, ICE states, quality summaries with real counts, leaves and
//! the end, in the hash-chained audit log.

use serde_json::Value;
use teleconsult::audit::{AuditEntry, Outcome};

use super::*;

fn details(entry: &AuditEntry) -> Value {
    serde_json::from_str(&entry.details).unwrap_or_else(|e| {
        panic!(
            "{} details are not JSON ({e}): {}",
            entry.action, entry.details
        )
    })
}

/// Sums `field` over the entries of `list` (an array of per-track objects).
fn total(list: &Value, field: &str) -> u64 {
    list.as_array()
        .map(|tracks| tracks.iter().filter_map(|t| t[field].as_u64()).sum())
        .unwrap_or(0)
}

/// Whether a quality summary shows media both ways for its participant: received from
/// them, sent to them, and forwarded to them from the other participant.
fn carried_media(quality: &Value, other: &str) -> bool {
    let received = &quality["received_from_participant"];
    let sent = &quality["sent_to_participant"];
    let forwarded = &quality["forwarded_to_participant"];
    fn kinds(list: &Value) -> Vec<&str> {
        let mut kinds: Vec<_> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["packets"].as_u64() > Some(0) && t["bytes"].as_u64() > Some(0))
            .filter_map(|t| t["kind"].as_str())
            .collect();
        kinds.sort_unstable();
        kinds
    }
    kinds(received) == ["audio", "video"]
        && kinds(sent) == ["audio", "video"]
        && total(forwarded, "packets") > 0
        && total(forwarded, "bytes") > 0
        && forwarded
            .as_array()
            .is_some_and(|tracks| tracks.iter().all(|t| t["from"] == other))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_log_records_what_happened() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();
    let nurse = join(&app, NURSE, &id).await;
    let doctor = join(&app, DOCTOR, &id).await;
    media_flows(&[&nurse, &doctor], &Counts::new()).await;

    // A periodic summary (every second in tests) with media in it, for each of them.
    let periodic = |entries: &[AuditEntry], user: &str, other: &str| {
        entries.iter().any(|e| {
            let d = details(e);
            e.action == "session.quality"
                && d["final"] == false
                && d["quality"]["participant"] == user
                && carried_media(&d["quality"], other)
        })
    };
    let started = tokio::time::Instant::now();
    let mut log = session_log(&app, &id).await;
    while !(periodic(&log, NURSE, DOCTOR) && periodic(&log, DOCTOR, NURSE))
        && started.elapsed() < PATIENCE
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log = session_log(&app, &id).await;
    }
    assert!(
        periodic(&log, NURSE, DOCTOR) && periodic(&log, DOCTOR, NURSE),
        "no periodic quality summary with media for both: {log:#?}"
    );

    // The nurse leaves, then the doctor ends the session.
    nurse.leave().await;
    let left = eventually(PATIENCE, || {
        doctor.events.try_lock().is_ok_and(|e| {
            e.iter()
                .any(|e| matches!(e, Out::ParticipantLeft(p) if p.user_id == NURSE))
        })
    })
    .await;
    assert!(left, "the doctor was not told the nurse left");
    SessionServiceClient::new(app.channel_as(DOCTOR))
        .end_session(EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(eventually(PATIENCE, || ended(&doctor)).await);

    let log = session_log(&app, &id).await;
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    let count = |action: &str| actions.iter().filter(|a| **a == action).count();
    assert_eq!(count("session.start"), 1, "{actions:?}");
    assert_eq!(count("session.end"), 1, "{actions:?}");

    let joins: Vec<(String, Value)> = log
        .iter()
        .filter(|e| e.action == "session.join")
        .map(|e| (e.actor.user.clone(), details(e)["role"].clone()))
        .collect();
    assert_eq!(
        joins,
        [
            (NURSE.to_owned(), Value::from("clinic_side")),
            (DOCTOR.to_owned(), Value::from("doctor"))
        ]
    );
    // The first join both starts the session and is the first join.
    let position = |action: &str| actions.iter().position(|a| *a == action).unwrap();
    assert!(position("session.start") < position("session.join"));

    for user in [NURSE, DOCTOR] {
        let states: Vec<String> = log
            .iter()
            .filter(|e| e.action == "session.ice_state")
            .map(details)
            .filter(|d| d["participant"] == user)
            .filter_map(|d| d["state"].as_str().map(str::to_owned))
            .collect();
        assert!(
            states.iter().any(|s| s == "connected"),
            "no connected ICE state for {user}: {states:?}"
        );
    }

    let leave = log
        .iter()
        .find(|e| e.action == "session.leave")
        .expect("the nurse's leave is logged");
    assert_eq!(leave.actor.user, NURSE);
    let leave = details(leave);
    assert_eq!(leave["reason"], "left");
    assert!(carried_media(&leave["quality"], DOCTOR), "{leave:#}");

    // The end carries the final summary of whoever was still there.
    let finals: Vec<Value> = log
        .iter()
        .filter(|e| e.action == "session.quality")
        .map(details)
        .filter(|d| d["final"] == true)
        .collect();
    assert_eq!(finals.len(), 1, "{finals:#?}");
    assert_eq!(finals[0]["quality"]["participant"], DOCTOR);
    assert!(position("session.leave") < position("session.end"));
    assert!(
        log.iter()
            .filter(|e| e.action.starts_with("session."))
            .all(|e| e.outcome == Outcome::Ok
                && e.target_institution.as_deref() == Some("biru-county-hospital")),
        "{log:#?}"
    );
    assert!(app.store.verify_audit().await.unwrap().is_intact());
}
