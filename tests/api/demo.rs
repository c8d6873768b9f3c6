//! `teleconsult demo`: the whole story, run as a user would run it, against a fresh
//! data directory. It must succeed, walk the consultation through every state, move
//! real media between all three participants and verify the audit chain.

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_teleconsult");

fn demo(data_dir: &std::path::Path) -> Output {
    Command::new(BINARY)
        .arg("demo")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .env_remove("TELECONSULT_LOG_FILTER")
        .env_remove("TELECONSULT_LOG_FORMAT")
        .output()
        .expect("running teleconsult demo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The rows of the relay statistics table: `(receiver, publisher, audio, video)`.
fn relay_rows(stdout: &str) -> Vec<(String, String, u64, u64)> {
    let mut lines = stdout
        .lines()
        .skip_while(|line| !line.starts_with("Relay statistics"))
        .skip(2);
    let mut rows = Vec::new();
    let mut receiver = String::new();
    for line in lines.by_ref().take_while(|line| !line.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // `participant  sent_audio / sent_video  from  audio  video`, or a continuation
        // row with only `from  audio  video`.
        let (from, audio, video) = match words.as_slice() {
            [user, _, "/", _, from, audio, video] => {
                receiver = (*user).to_owned();
                (from, audio, video)
            }
            [from, audio, video] => (from, audio, video),
            _ => panic!("unexpected relay statistics row: {line:?}"),
        };
        rows.push((
            receiver.clone(),
            (*from).to_owned(),
            audio.parse().expect("an audio packet count"),
            video.parse().expect("a video packet count"),
        ));
    }
    rows
}

#[test]
fn the_demo_runs_the_whole_consultation() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("demo");
    let output = demo(&data_dir);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "demo failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );

    // Every state of the lifecycle, in order.
    let mut rest = stdout.as_str();
    for state in [
        "REQUESTED",
        "SCHEDULED",
        "IN_SESSION",
        "AWAITING_REPORT",
        "COMPLETED",
    ] {
        let line = format!("consultation state: {state}");
        let at = rest
            .find(&line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{stdout}"));
        rest = &rest[at..];
    }

    // Each of the three received audio and video from each of the other two.
    let rows = relay_rows(&stdout);
    assert_eq!(
        rows.len(),
        6,
        "three participants, two others each:\n{stdout}"
    );
    for (receiver, publisher, audio, video) in &rows {
        assert_ne!(receiver, publisher);
        assert!(
            *audio > 0 && *video > 0,
            "{receiver} got {audio} audio and {video} video packets from {publisher}:\n{stdout}"
        );
    }
    for user in [
        "biru-nurse-dawa",
        "zju2-cardio-chen",
        "biru-interp-yangchen",
    ] {
        assert!(
            rows.iter().any(|(receiver, _, _, _)| receiver == user),
            "{user} missing from the relay statistics:\n{stdout}"
        );
    }

    // The audit trail shows the session, and the chain verifies.
    for action in [
        "scheduling.book_consultation",
        "scheduling.record_consent",
        "session.join",
        "scheduling.invite_participant",
        "session.end",
        "scheduling.sign_opinion",
    ] {
        assert!(
            stdout.contains(action),
            "{action} missing from the trail:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("audit chain verified"),
        "the chain was not verified:\n{stdout}"
    );
    assert!(data_dir.join("teleconsult.db").exists());
}

#[test]
fn the_demo_refuses_a_data_directory_that_holds_a_database() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("teleconsult.db"), b"").unwrap();
    let output = demo(directory.path());
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("already holds a database") && stderr.contains("fresh data directory"),
        "{stderr}"
    );
}
