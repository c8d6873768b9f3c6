//! `teleconsult audit query | timeline | export | verify --remote` against a running
//! development broker, as the demo users of deploy/directory.example.toml.

use std::time::Duration;

use serde_json::Value;
use teleconsult::domain::schedule::SHANGHAI;
use time::{Duration as Days, OffsetDateTime, Weekday};

use crate::dev_broker::{DevBroker, has, text};

const NURSE: &str = "biru-nurse-dawa";
const CARDIOLOGIST: &str = "zju2-cardio-chen";
const PLATFORM_ADMIN: &str = "platform-admin";
const BIRU_ADMIN: &str = "biru-admin-tseten";

/// `2026-12-07T09:00` on a Monday at least two days ahead, as the commands take it.
fn monday_nine() -> (String, String) {
    let mut day = OffsetDateTime::now_utc().to_offset(SHANGHAI).date() + Days::days(2);
    while day.weekday() != Weekday::Monday {
        day += Days::days(1);
    }
    (format!("{day}T09:00"), format!("{day}T09:30"))
}

/// A consultation booked, accepted and consented to through the commands.
fn consented(broker: &DevBroker) -> String {
    broker.ok(
        CARDIOLOGIST,
        &["availability", "set", "--weekly", "mon-fri 09:00-12:00"],
    );
    let (start, end) = monday_nine();
    let booked = broker.json(
        NURSE,
        &[
            "consult",
            "book",
            "--doctor",
            CARDIOLOGIST,
            "--start",
            &start,
            "--end",
            &end,
            "--patient-ref",
            "biru-p-0101",
            "--specialty",
            "cardiology",
            "--reason",
            "exertional chest pain",
        ],
    );
    let id = booked["id"].as_str().unwrap().to_owned();
    broker.ok(CARDIOLOGIST, &["consult", "accept", &id]);
    broker.ok(
        NURSE,
        &[
            "consult",
            "consent",
            &id,
            "--consenter",
            "patient",
            "--method",
            "written",
        ],
    );
    id
}

#[test]
fn an_admin_reads_exports_and_verifies_the_log_from_the_command_line() {
    let broker = DevBroker::start();
    let id = consented(&broker);

    // The timeline: in order, in local time, each line saying what happened.
    let (timeline, _) = broker.ok(PLATFORM_ADMIN, &["audit", "timeline", &id]);
    has(&timeline, &format!("consultation {id}: 3 audit records"));
    let lines: Vec<&str> = timeline.lines().collect();
    assert!(lines[1].starts_with("TIME (UTC+8)"), "{timeline}");
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in:\n{timeline}"))
    };
    let (booked, accepted, consent) = (
        position("scheduling.book_consultation"),
        position("scheduling.accept_consultation"),
        position("scheduling.record_consent"),
    );
    assert!(booked < accepted && accepted < consent, "{timeline}");
    has(lines[booked], "biru-nurse-dawa (clinic_staff)");
    has(
        lines[booked],
        "booked zju2-cardio-chen (zju2-hospital), cardiology",
    );
    has(lines[accepted], "requested → scheduled");
    has(lines[consent], "consent: patient, written");
    let today = OffsetDateTime::now_utc().to_offset(SHANGHAI).date();
    assert!(
        lines[booked].starts_with(&today.to_string())
            || lines[booked].starts_with(&(today - Days::days(1)).to_string()),
        "when it was recorded, in Asia/Shanghai: {timeline}"
    );

    // Clinic staff may not read it; the refusal is in the log, as a query shows.
    let refused = broker.run(NURSE, &["audit", "timeline", &id]);
    assert_eq!(refused.status.code(), Some(1));
    has(&text(&refused.stderr), "error: PERMISSION_DENIED: ");
    let denied = broker.json(
        PLATFORM_ADMIN,
        &[
            "audit",
            "query",
            "--outcome",
            "denied",
            "--action",
            "audit.timeline",
        ],
    );
    let records = denied["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{denied}");
    assert_eq!(records[0]["actor_user_id"], NURSE);
    assert_eq!(records[0]["outcome"], "OUTCOME_DENIED");

    // Queries: by consultation as JSON, by user as a table, a limit over pages.
    let about = broker.json(
        BIRU_ADMIN,
        &["audit", "query", "--consultation", &id, "--limit", "0"],
    );
    let actions: Vec<&str> = about["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "scheduling.book_consultation",
            "scheduling.accept_consultation",
            "scheduling.record_consent",
            "audit.timeline",
        ]
    );
    let (table, _) = broker.ok(
        PLATFORM_ADMIN,
        &["audit", "query", "--user", CARDIOLOGIST, "--newest-first"],
    );
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("SEQ"), "{table}");
    has(rows[1], "scheduling.accept_consultation");
    has(rows[1], &format!("consultation:{id}"));
    has(rows[2], "scheduling.set_availability");
    let (_, note) = broker.ok(PLATFORM_ADMIN, &["audit", "query", "--limit", "2"]);
    has(&note, "the first 2 records; more may match");
    let refused = broker.run(
        BIRU_ADMIN,
        &["audit", "query", "--institution", "zju2-hospital"],
    );
    has(&text(&refused.stderr), "error: PERMISSION_DENIED: ");

    // A FHIR export to a file; the head goes to stderr and a later verify agrees.
    let file = broker.directory.path().join("audit.ndjson");
    let (_, said) = broker.ok(
        PLATFORM_ADMIN,
        &[
            "audit",
            "export",
            "--format",
            "fhir",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["resourceType"] == "AuditEvent"));
    has(&said, &format!("exported {} records to", events.len()));
    let head = said
        .lines()
        .find_map(|l| l.strip_prefix("chain head when the export began: record "))
        .unwrap_or_else(|| panic!("the head in: {said}"));
    let (head_seq, head_hash) = head.split_once(", hash ").unwrap();
    let head_seq: u64 = head_seq.parse().unwrap();
    assert_eq!(
        events.last().unwrap()["id"],
        format!("teleconsult-{head_seq}"),
        "the export runs up to its head"
    );

    let (verified, _) = broker.ok(BIRU_ADMIN, &["audit", "verify", "--remote"]);
    has(&verified, "audit chain intact: ");
    let up_to = broker.json(
        BIRU_ADMIN,
        &[
            "audit",
            "verify",
            "--remote",
            "--to-seq",
            &head_seq.to_string(),
        ],
    );
    assert_eq!(up_to["intact"], true);
    assert_eq!(up_to["head_seq"], head_seq);
    assert_eq!(up_to["head_hash"], head_hash);
    let refused = broker.run(NURSE, &["audit", "verify", "--remote"]);
    has(&text(&refused.stderr), "error: PERMISSION_DENIED: ");

    // Someone edits a record in the database: the remote verify names it.
    let connection = rusqlite::Connection::open(broker.database_path()).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET outcome = 'ok' WHERE action = 'audit.timeline';",
        )
        .unwrap();
    let broken = broker.run(PLATFORM_ADMIN, &["audit", "verify", "--remote"]);
    assert_eq!(broken.status.code(), Some(1));
    let seq = records[0]["seq"].as_u64().unwrap();
    has(
        &text(&broken.stdout),
        &format!("audit chain BROKEN at record {seq}: content does not match"),
    );
    let range = broker.run(
        PLATFORM_ADMIN,
        &[
            "audit",
            "verify",
            "--remote",
            "--from-seq",
            &(seq + 1).to_string(),
        ],
    );
    assert!(range.status.success(), "{}", text(&range.stdout));
}
