//! The `teleconsult` client commands against a running development broker: each role's
//! day through the command line, as the demo users of deploy/directory.example.toml.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use teleconsult::audit::Actor;
use teleconsult::domain::consultation::ConsultationId;
use teleconsult::domain::schedule::{SHANGHAI, local_minute};
use teleconsult::events::ConsultationEvents;
use teleconsult::relay::lifecycle::{end_session, start_session};
use time::format_description::well_known::Rfc3339;
use time::{Duration as Days, OffsetDateTime, UtcOffset, Weekday};

use crate::dev_broker::{DevBroker, has, text};

const NURSE: &str = "biru-nurse-dawa";
const OTHER_CLINIC: &str = "nagqu-peoples-drolma";
const CARDIOLOGIST: &str = "zju2-cardio-chen";
/// On call for cardiology, like Chen: sees urgent cardiology requests.
const ON_CALL: &str = "zju2-cardio-wang";

/// `2026-12-07T09:00`, as the commands take local times.
fn local(at: OffsetDateTime) -> String {
    local_minute(at).replacen(' ', "T", 1)
}

/// Local midnight of a Monday at least two days ahead, so that the Sunday evening
/// before it is still in the future whenever the test runs.
fn next_monday() -> OffsetDateTime {
    let mut day = OffsetDateTime::now_utc().to_offset(SHANGHAI).date() + Days::days(2);
    while day.weekday() != Weekday::Monday {
        day += Days::days(1);
    }
    day.midnight().assume_offset(SHANGHAI)
}

fn id_of(consultation: &Value) -> String {
    consultation["id"].as_str().unwrap().to_owned()
}

/// The cardiologist's hours: mornings, a Sunday evening past midnight, and leave on
/// the Tuesday after `monday`.
fn publish_hours(broker: &DevBroker, monday: OffsetDateTime) {
    let tuesday = monday + Days::days(1);
    let (leave_from, leave_to) = (local(tuesday), local(tuesday + Days::days(1)));
    let hours = format!(
        "availability set --weekly 'mon-fri 09:00-12:00' --weekly 'sun 22:00-01:00' \
         --exception '{leave_from}/{leave_to} conference'"
    );
    broker.refused(NURSE, &hours, "PERMISSION_DENIED");
    broker.ok(CARDIOLOGIST, &hours);
}

/// Books the cardiologist at `monday` + `minutes` for half an hour; returns the id.
fn book(broker: &DevBroker, monday: OffsetDateTime, minutes: i64, patient: &str) -> String {
    let start = monday + Days::minutes(minutes);
    let (start, end) = (local(start), local(start + Days::minutes(30)));
    let booked = broker.json(
        NURSE,
        &format!(
            "consult book --doctor {CARDIOLOGIST} --start {start} --end {end} \
             --patient-ref {patient} --specialty cardiology --reason 'exertional chest pain'"
        ),
    );
    assert_eq!(booked["state"], "CONSULTATION_STATE_REQUESTED");
    id_of(&booked)
}

#[test]
fn a_clinic_finds_books_and_follows_a_specialist() {
    let broker = DevBroker::start();
    let monday = next_monday();
    let (me, _) = broker.ok(NURSE, "whoami");
    has(
        &me,
        "biru-nurse-dawa (clinic_staff) at biru-county-hospital",
    );
    let found = broker.json(NURSE, "specialists search --language tibetan");
    let ids: Vec<&str> = found["specialists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&ON_CALL) && !ids.contains(&CARDIOLOGIST),
        "{ids:?}"
    );

    publish_hours(&broker, monday);
    let (shown, _) = broker.ok(NURSE, &format!("availability show --doctor {CARDIOLOGIST}"));
    has(&shown, "Sun 22:00–01:00 (next day)");
    has(&shown, "conference");

    // Slots across local midnight, each with the command that books it.
    let (sunday_evening, tuesday) = (monday - Days::hours(3), monday + Days::days(1));
    let (from, to) = (local(sunday_evening), local(monday + Days::hours(2)));
    let (slots, _) = broker.ok(
        NURSE,
        &format!("slots search --doctor {CARDIOLOGIST} --from {from} --to {to}"),
    );
    let (sunday, monday_date) = (&from[..10], &to[..10]);
    has(
        &slots,
        &format!("{sunday} 22:00–22:30 (UTC+8)  zju2-cardio-chen 陈明 Chen Ming, zju2-hospital"),
    );
    has(
        &slots,
        &format!("{sunday} 23:30–{monday_date} 00:00 (UTC+8)"),
    );
    assert_eq!(
        slots.matches("teleconsult consult book").count(),
        6,
        "{slots}"
    );
    let printed = slots
        .lines()
        .find(|l| l.contains("consult book"))
        .unwrap()
        .trim();
    let slot = &printed["teleconsult consult book ".len()..printed.find(" --patient-ref").unwrap()];
    assert_eq!(
        slot,
        format!(
            "--doctor {CARDIOLOGIST} --start {sunday}T22:00 --end {sunday}T22:30 --specialty cardiology"
        )
    );
    let (leave_from, leave_to) = (local(tuesday), local(tuesday + Days::days(1)));
    let (on_leave, _) = broker.ok(
        NURSE,
        &format!("slots search --doctor {CARDIOLOGIST} --from {leave_from} --to {leave_to}"),
    );
    has(&on_leave, "no free slots");

    // Book the printed slot exactly as printed; the same slot again is refused.
    let booking = format!("consult book {slot} --patient-ref biru-p-0042 --reason 'chest pain'");
    let first = broker.json(NURSE, &booking);
    let ten_pm = (sunday_evening + Days::hours(1)).to_offset(UtcOffset::UTC);
    assert_eq!(first["start"], ten_pm.format(&Rfc3339).unwrap().as_str());
    let first = id_of(&first);
    broker.refused(NURSE, &booking, "ALREADY_EXISTS");

    // Only the assigned doctor accepts; the clinic records consent; other clinics see nothing.
    let denied = broker.refused(
        NURSE,
        &format!("consult accept {first}"),
        "PERMISSION_DENIED",
    );
    has(&denied, "accept");
    let (accepted, _) = broker.ok(CARDIOLOGIST, &format!("consult accept {first}"));
    has(&accepted, &format!("accepted {first}: SCHEDULED"));
    let (consent, _) = broker.ok(NURSE, &format!("consult consent {first} --consenter guardian --method verbal-witnessed --witness Yangchen"));
    has(
        &consent,
        "guardian, verbal-witnessed (witness Yangchen); recorded by biru-nurse-dawa",
    );
    broker.refused(
        OTHER_CLINIC,
        &format!("consult show {first}"),
        "PERMISSION_DENIED",
    );
    let (nine, half_past) = (
        local(monday + Days::hours(9)),
        local(monday + Days::minutes(570)),
    );
    let (moved, _) = broker.ok(
        NURSE,
        &format!("consult reschedule {first} --start {nine} --end {half_past}"),
    );
    has(&moved, &format!("{monday_date} 09:00–09:30 (UTC+8)"));

    // A declined and a cancelled booking.
    let second = book(&broker, monday, 600, "biru-p-0043");
    let (declined, _) = broker.ok(
        CARDIOLOGIST,
        &format!("consult decline {second} --reason 'send an echocardiogram first'"),
    );
    has(&declined, &format!("declined {second}: DECLINED"));
    has(&declined, "send an echocardiogram first");
    let third = book(&broker, monday, 660, "biru-p-0044");
    let (cancelled, _) = broker.ok(
        NURSE,
        &format!("consult cancel {third} --reason 'transferred to Lhasa'"),
    );
    has(&cancelled, &format!("cancelled {third}: CANCELLED"));

    // The clinic's list, as a table and as JSON.
    let (table, _) = broker.ok(NURSE, "consult list");
    assert!(table.starts_with("ID "), "{table}");
    for (id, state) in [
        (&first, "SCHEDULED"),
        (&second, "DECLINED"),
        (&third, "CANCELLED"),
    ] {
        let row = table.lines().find(|l| l.starts_with(id.as_str()));
        assert!(
            row.is_some_and(|row| row.contains(state)),
            "{id} {state} in {table}"
        );
    }
    let listed = broker.json(NURSE, "consult list --state scheduled --state declined");
    let mut states: Vec<(String, &str)> = listed["consultations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (id_of(c), c["state"].as_str().unwrap()))
        .collect();
    states.sort();
    let mut expected = vec![
        (first, "CONSULTATION_STATE_SCHEDULED"),
        (second, "CONSULTATION_STATE_DECLINED"),
    ];
    expected.sort();
    assert_eq!(states, expected);
}

#[test]
fn an_on_call_doctor_watching_sees_an_urgent_request() {
    let broker = DevBroker::start();
    let mut watch = broker
        .command(ON_CALL, "consult watch")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The watch is open once it says so: no sleeping.
    let mut watching = String::new();
    BufReader::new(watch.stderr.take().unwrap())
        .read_line(&mut watching)
        .unwrap();
    has(&watching, "watching consultations");
    let events = watch.stdout.take().unwrap();
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(events).lines() {
            let _ = sender.send(line.unwrap());
        }
    });
    let request = "consult urgent --specialty cardiology --patient-ref biru-p-0045 --reason 'suspected HAPE, SpO2 71%'";
    let urgent = id_of(&broker.json(NURSE, request));
    let event = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the watcher sees the request");
    has(&event, &format!("URGENT_REQUEST  {urgent}  REQUESTED"));
    let (accepted, _) = broker.ok(ON_CALL, &format!("consult accept {urgent}"));
    has(&accepted, "SCHEDULED (urgent)");
    let event = received
        .recv_timeout(Duration::from_secs(10))
        .expect("and its acceptance");
    has(&event, &format!("CHANGED         {urgent}  SCHEDULED"));
    Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(
        watch.wait().unwrap().success(),
        "watch ends cleanly on Ctrl-C"
    );
}

#[test]
fn a_signed_opinion_verifies_until_someone_edits_it() {
    let broker = DevBroker::start();
    let monday = next_monday();
    publish_hours(&broker, monday);
    let id = book(&broker, monday, 540, "biru-p-0046");
    broker.ok(CARDIOLOGIST, &format!("consult accept {id}"));
    broker.ok(
        NURSE,
        &format!("consult consent {id} --consenter patient --method written"),
    );

    // The session is not the CLI's yet: the library moves it on while the broker runs.
    let database = broker.database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = teleconsult::store::open(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
        let (events, consultation) = (
            ConsultationEvents::default(),
            ConsultationId::parse(&id).unwrap(),
        );
        start_session(&store, &events, &consultation, Actor::system("cli-test"))
            .await
            .unwrap();
        end_session(&store, &events, &consultation, Actor::system("cli-test"))
            .await
            .unwrap();
    });

    broker.refused(NURSE, &format!("opinion show {id} --verify"), "NOT_FOUND");
    let (filed, _) = broker.ok(CARDIOLOGIST, &format!("opinion file {id} --diagnosis 'stable angina' --recommendations 'aspirin; descend below 3000 m if pain recurs' --follow-up 'review in 2 weeks'"));
    has(
        &filed,
        &format!("filed draft version 1 of the opinion on {id}"),
    );
    let (signed, _) = broker.ok(CARDIOLOGIST, &format!("opinion sign {id} --version 1"));
    has(&signed, &format!("opinion on {id} version 1  SIGNED"));
    let (verified, _) = broker.ok(NURSE, &format!("opinion show {id} --verify"));
    has(&verified, "VERIFIED: the report's content hashes to");
    has(&verified, "aspirin; descend below 3000 m");
    assert_eq!(
        broker.json(NURSE, &format!("opinion show {id} --verify"))["verified"],
        true
    );
    let completed = broker.json(NURSE, &format!("consult show {id}"));
    assert_eq!(completed["state"], "CONSULTATION_STATE_COMPLETED");

    // Someone with the database file rewrites the signed advice: the clinic notices.
    let connection = rusqlite::Connection::open(&database).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER opinion_reports_signed_no_update;
             UPDATE opinion_reports SET recommendations = 'no treatment needed';",
        )
        .unwrap();
    let tampered = broker.run(NURSE, &format!("opinion show {id} --verify"));
    assert_eq!(tampered.status.code(), Some(1));
    let report = text(&tampered.stdout);
    has(&report, "NOT VERIFIED:");
    has(&report, "content hash: the broker says");
}
