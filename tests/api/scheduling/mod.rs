//! SchedulingService end to end: availability, slot search, booking, the consultation
//! lifecycle, urgent requests, opinions, live updates and the authorization table, over
//! mutual TLS against the real broker and a real database. Each test checks the status
//! code, what the store then holds, and what the audit chain says.
//!
//! Tests of what the database guarantees (booking, the lifecycle, urgent requests,
//! races, opinions) run on SQLite and on PostgreSQL, in modules named after the
//! backend. The PostgreSQL variants need `TELECONSULT_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); without it they return at once.
//!
//! Times are computed from the clock: a slot must lie in the future to be booked, so
//! the tests book in the weeks ahead (see [`monday_ahead`]) and check time zones on
//! dates of the coming year.

use std::time::Duration as StdDuration;

use teleconsult::audit::{AuditEntry, AuditRecord, Outcome};
use teleconsult::auth::pki::ClientSubject;
use teleconsult::domain::consultation::{Consultation, ConsultationId};
use teleconsult::domain::directory::{Language, Name, Role, SlotMinutes, SpecialistProfile, User};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use teleconsult::store::DirectorySeed;
use time::macros::offset;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::helpers::TestApp;

/// Generates, for each named `async fn(TestApp)` of the enclosing module, a test in
/// module `sqlite` and one in module `postgres`, each with the attributes (such as
/// `#[ignore]`) written before the name.
macro_rules! on_both_backends {
    ($($(#[$attribute:meta])* $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn $test() {
                    super::$test(crate::helpers::TestApp::spawn().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn $test() {
                    let limits = teleconsult::server::HandshakeLimits::default();
                    let backend = crate::helpers::Backend::Postgres;
                    if let Some(app) = crate::helpers::TestApp::spawn_on(backend, limits).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

mod authorization;
mod availability;
mod booking;
mod lifecycle;
mod opinions;
mod races;
mod session;
mod timezone;
mod urgent;
mod watch;

pub type Client = SchedulingServiceClient<Channel>;

// The fixture's people (see `helpers::FIXTURE`).
pub const DAWA: &str = "biru-nurse-dawa"; // clinic_staff, biru-county-hospital
pub const DROLMA: &str = "nagqu-nurse-drolma"; // clinic_staff, nagqu-peoples
pub const CHEN: &str = "zju2-cardio-chen"; // doctor, cardiology, on call
pub const ZHOU: &str = "zju2-eye-zhou"; // doctor, ophthalmology
pub const LI: &str = "zjpph-altitude-li"; // doctor, high-altitude medicine + cardiology, not on call
pub const NORBU: &str = "biru-interpreter-norbu";
pub const ZJU2_ADMIN: &str = "zju2-admin";
pub const BIRU_ADMIN: &str = "biru-admin";
pub const PLATFORM_ADMIN: &str = "platform-admin";

pub const BIRU: &str = "biru-county-hospital";
pub const ZJU2: &str = "zju2-hospital";
pub const ZJPPH: &str = "zj-provincial";

pub const CARDIOLOGY: &str = "cardiology";
pub const OPHTHALMOLOGY: &str = "ophthalmology";

/// How long any single wait on the server may take before the test fails.
pub const PATIENCE: StdDuration = StdDuration::from_secs(20);

/// Asia/Shanghai, written out here rather than taken from the crate: UTC+8 all year.
pub const UTC_PLUS_8: UtcOffset = offset!(+8);

// Time.

pub fn ts(at: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    }
}

pub fn instant(at: Option<&prost_types::Timestamp>) -> OffsetDateTime {
    let at = at.expect("the timestamp is set");
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos),
    )
    .unwrap()
}

/// The wall-clock time `hour:minute` in Nagqu and Hangzhou on `date`, as an instant.
pub fn local(date: Date, hour: u8, minute: u8) -> OffsetDateTime {
    PrimitiveDateTime::new(date, Time::from_hms(hour, minute, 0).unwrap())
        .assume_offset(UTC_PLUS_8)
        .to_offset(UtcOffset::UTC)
}

/// A local Monday at least two days ahead, `weeks` weeks further on: none of its
/// slots, nor those of the Sunday night before it, has begun.
pub fn monday_ahead(weeks: i64) -> Date {
    let today = OffsetDateTime::now_utc().to_offset(UTC_PLUS_8).date();
    let until_monday = 7 - i64::from(today.weekday().number_days_from_monday());
    let mut monday = today + Duration::days(until_monday);
    if monday - today < Duration::days(2) {
        monday += Duration::weeks(1);
    }
    monday + Duration::weeks(weeks)
}

// Availability.

pub fn interval(weekday: u32, start_minute: u32, end_minute: u32) -> pb::WeeklyInterval {
    pb::WeeklyInterval {
        weekday,
        start_minute,
        end_minute,
    }
}

/// The doctors' usual week: Monday 09:00–12:00, and Sunday 22:00 to Monday 01:00,
/// which crosses local midnight and the end of the week.
pub fn usual_week() -> Vec<pb::WeeklyInterval> {
    vec![interval(1, 9 * 60, 12 * 60), interval(7, 22 * 60, 25 * 60)]
}

pub fn availability(
    doctor: &str,
    weekly: Vec<pb::WeeklyInterval>,
    auto_accept: bool,
) -> pb::Availability {
    pb::Availability {
        doctor_id: doctor.into(),
        weekly,
        exceptions: vec![],
        auto_accept,
    }
}

/// The doctor publishes `weekly` themself.
pub async fn publish(
    app: &TestApp,
    doctor: &str,
    weekly: Vec<pb::WeeklyInterval>,
    auto_accept: bool,
) {
    app.scheduling_as(doctor)
        .set_availability(pb::SetAvailabilityRequest {
            availability: Some(availability(doctor, weekly, auto_accept)),
        })
        .await
        .expect("a doctor publishes their own hours");
}

/// The free slots of `doctor` starting in `[from, to)`, as the clinic searches them.
pub async fn free_starts(
    app: &TestApp,
    doctor: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<OffsetDateTime> {
    search(app, doctor, from, to)
        .await
        .iter()
        .map(|slot| instant(slot.start.as_ref()))
        .collect()
}

pub async fn search(
    app: &TestApp,
    doctor: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<pb::Slot> {
    app.scheduling_as(DAWA)
        .search_slots(pb::SearchSlotsRequest {
            doctor_id: doctor.into(),
            from: Some(ts(from)),
            to: Some(ts(to)),
            page: Some(pb::PageRequest {
                page_size: 500,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("searching slots")
        .into_inner()
        .slots
}

// Booking.

fn institution_of(doctor: &str) -> &'static str {
    match doctor {
        CHEN | ZHOU => ZJU2,
        LI => ZJPPH,
        _ => "",
    }
}

/// A 30-minute slot of `doctor` from `start`.
pub fn slot(doctor: &str, start: OffsetDateTime) -> pb::Slot {
    pb::Slot {
        doctor_id: doctor.into(),
        institution_id: institution_of(doctor).into(),
        start: Some(ts(start)),
        end: Some(ts(start + Duration::minutes(30))),
    }
}

/// A cardiology booking of `slot` for a pseudonymous patient.
pub fn booking(slot: pb::Slot) -> pb::BookConsultationRequest {
    pb::BookConsultationRequest {
        slot: Some(slot),
        patient_ref: "BIRU-2026-0042".into(),
        specialty: CARDIOLOGY.into(),
        reason: "exertional dyspnoea at 4,500 m; suspected high-altitude heart disease".into(),
        case_summary: "58-year-old herder, SpO2 81% at rest, ankle oedema for 3 weeks".into(),
    }
}

pub async fn book(
    app: &TestApp,
    nurse: &str,
    request: pb::BookConsultationRequest,
) -> pb::Consultation {
    app.scheduling_as(nurse)
        .book_consultation(request)
        .await
        .expect("booking a free slot")
        .into_inner()
}

/// Books Chen's slot at `start` as Dawa; he accepts unless he auto-accepts already.
pub async fn book_scheduled(app: &TestApp, start: OffsetDateTime) -> pb::Consultation {
    let booked = book(app, DAWA, booking(slot(CHEN, start))).await;
    if state_of(&booked) == pb::ConsultationState::Scheduled {
        return booked;
    }
    app.scheduling_as(CHEN)
        .accept_consultation(pb::AcceptConsultationRequest { id: booked.id })
        .await
        .expect("the assigned doctor accepts")
        .into_inner()
}

pub fn written_consent() -> pb::ConsentRecord {
    pb::ConsentRecord {
        consenter: pb::consent_record::Consenter::Patient as i32,
        method: pb::consent_record::Method::Written as i32,
        ..Default::default()
    }
}

pub async fn record_consent(app: &TestApp, id: &str) -> pb::Consultation {
    app.scheduling_as(DAWA)
        .record_consent(pb::RecordConsentRequest {
            id: id.into(),
            consent: Some(written_consent()),
        })
        .await
        .expect("the clinic records consent")
        .into_inner()
}

pub fn opinion(id: &str, diagnosis: &str) -> pb::FileOpinionRequest {
    pb::FileOpinionRequest {
        consultation_id: id.into(),
        diagnosis_impression: diagnosis.into(),
        recommendations: "descend to below 3,000 m if possible; furosemide 20 mg daily".into(),
        follow_up: "echocardiography in Nagqu within 2 weeks; teleconsult review after".into(),
    }
}

pub fn state_of(consultation: &pb::Consultation) -> pb::ConsultationState {
    pb::ConsultationState::try_from(consultation.state).expect("a known state")
}

pub fn consultation_id(id: &str) -> ConsultationId {
    ConsultationId::parse(id).expect("the server hands out valid ids")
}

/// The consultation as the store holds it.
pub async fn stored(app: &TestApp, id: &str) -> Consultation {
    app.store
        .consultation(&consultation_id(id))
        .await
        .unwrap()
        .expect("the consultation is stored")
}

/// Every consultation in the store.
pub async fn all_consultations(app: &TestApp) -> Vec<Consultation> {
    let filter = teleconsult::store::ConsultationFilter {
        limit: teleconsult::domain::directory::PageSize::new(500),
        ..Default::default()
    };
    app.store
        .consultations(
            &teleconsult::domain::policy::ConsultationScope::All,
            &filter,
        )
        .await
        .unwrap()
}

// Answers.

/// Asserts that `result` failed with `code` and a message mentioning `mentions`.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    mentions: &str,
) -> Status {
    match result {
        Ok(answer) => panic!("expected {code:?} mentioning {mentions:?}, got {answer:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(mentions),
                "expected the message to mention {mentions:?}: {:?}",
                status.message()
            );
            status
        }
    }
}

/// The next event on a watch stream, failing the test if none comes in time.
pub async fn next_event(stream: &mut Streaming<pb::ConsultationEvent>) -> pb::ConsultationEvent {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event arrives in time")
        .expect("the stream is healthy")
        .expect("the stream is still open")
}

pub fn kind_of(event: &pb::ConsultationEvent) -> pb::consultation_event::Kind {
    pb::consultation_event::Kind::try_from(event.kind).expect("a known kind")
}

/// Opens a watch as `user`; once this returns the server is subscribed.
pub async fn watch(app: &TestApp, user: &str) -> Streaming<pb::ConsultationEvent> {
    app.scheduling_as(user)
        .watch(pb::WatchRequest {})
        .await
        .expect("watching")
        .into_inner()
}

// Audit.

/// Asserts that `records` (those appended since some point) is exactly one record, and
/// that it says `actor` did `action` to `target` with `outcome`; returns it.
#[track_caller]
pub fn only_record(
    records: &[AuditRecord],
    actor: &str,
    action: &str,
    target: &str,
    outcome: Outcome,
) -> AuditRecord {
    let [record] = records else {
        panic!(
            "expected one audit record, found {}: {records:#?}",
            records.len()
        );
    };
    let entry = &record.entry;
    assert_eq!(
        (
            entry.actor.user.as_str(),
            entry.action.as_str(),
            entry.target.as_str(),
            entry.outcome
        ),
        (actor, action, target, outcome),
        "{record:#?}"
    );
    record.clone()
}

/// The details of an audit record, parsed.
pub fn details(record: &AuditRecord) -> serde_json::Value {
    serde_json::from_str(&record.entry.details).expect("details are JSON")
}

pub fn setup_entry(target: &str) -> AuditEntry {
    AuditEntry::new(
        teleconsult::audit::Actor::system("test"),
        "test.setup",
        target,
        Outcome::Ok,
    )
}

// More people.

/// A user of `institution` in `role`, for tests that need more people than the
/// fixture has.
pub fn user(id: &str, institution: &str, role: Role) -> User {
    User {
        id: UserId::parse(id).unwrap(),
        institution: InstitutionId::parse(institution).unwrap(),
        role,
        display_name_zh: Name::parse("测试用户").unwrap(),
        display_name_en: Name::parse(&format!("Test user {id}")).unwrap(),
        active: true,
    }
}

pub fn cardiologist_profile(id: &str, on_call: bool) -> SpecialistProfile {
    SpecialistProfile::new(
        UserId::parse(id).unwrap(),
        vec![Specialty::parse(CARDIOLOGY).unwrap()],
        Name::parse("attending physician").unwrap(),
        vec![Language::Mandarin],
        on_call,
        SlotMinutes::DEFAULT,
    )
    .unwrap()
}

/// Adds users (and specialist profiles) to the directory in one import.
pub async fn add_people(app: &TestApp, users: Vec<User>, specialists: Vec<SpecialistProfile>) {
    let seed = DirectorySeed {
        institutions: vec![],
        users,
        specialists,
    };
    app.store
        .import_directory(&seed, setup_entry("directory"))
        .await
        .expect("importing test users");
}

/// A client for a user who is not in the fixture, with a certificate of their own.
pub fn client_for(app: &TestApp, user: &User) -> Client {
    let certificate = app.certificate(&ClientSubject {
        user: user.id.to_string(),
        institution: user.institution.to_string(),
        role: user.role.to_string(),
    });
    SchedulingServiceClient::new(app.channel_with(&certificate))
}

// The live session's side of the lifecycle.

/// What the live session does when the first participant is admitted.
pub async fn start_session(app: &TestApp, id: &str) -> Consultation {
    teleconsult::relay::lifecycle::start_session(
        &app.store,
        &app.events,
        &consultation_id(id),
        teleconsult::audit::Actor::system("test"),
    )
    .await
    .expect("the session starts")
}

/// What the live session does when it ends.
pub async fn end_session(app: &TestApp, id: &str) -> Consultation {
    teleconsult::relay::lifecycle::end_session(
        &app.store,
        &app.events,
        &consultation_id(id),
        teleconsult::audit::Actor::system("test"),
    )
    .await
    .expect("the session ends")
}

/// Takes Chen's booking at `start` from the request to a signed opinion.
pub async fn completed(app: &TestApp, start: OffsetDateTime) -> pb::Consultation {
    let booked = book_scheduled(app, start).await;
    record_consent(app, &booked.id).await;
    start_session(app, &booked.id).await;
    end_session(app, &booked.id).await;
    let mut chen = app.scheduling_as(CHEN);
    chen.file_opinion(opinion(&booked.id, "high-altitude pulmonary hypertension"))
        .await
        .expect("the assigned doctor files the opinion");
    chen.sign_opinion(pb::SignOpinionRequest {
        consultation_id: booked.id.clone(),
        version: 1,
    })
    .await
    .expect("the assigned doctor signs it");
    chen.get_consultation(pb::GetConsultationRequest { id: booked.id })
        .await
        .unwrap()
        .into_inner()
}
