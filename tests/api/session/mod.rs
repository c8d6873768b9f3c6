//! The live consult over real mTLS signaling and real webrtc-rs peers on loopback.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teleconsult::audit::Actor;
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, Consultation,
    ConsultationId, ConsultationState, Event, PatientRef,
};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::domain::schedule::Window;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::proto::v1::signal_response::Message as Out;
use teleconsult::proto::v1::{EndSessionRequest, InviteParticipantRequest};
use teleconsult::relay::synthetic::{
    SyntheticMedia, SyntheticParticipant as Participant, eventually,
};
use tonic::Code;

use crate::helpers::TestApp;

mod ice_tcp;
mod impaired;
mod invite;
mod lifecycle;
mod session_log;
mod signaling;
mod three_party;
mod waiting_room;

/// The clinic nurse, the assigned cardiologist and the interpreter of the fixture.
const NURSE: &str = "biru-nurse-dawa";
const DOCTOR: &str = "zju2-cardio-chen";
const INTERPRETER: &str = "biru-interpreter-norbu";

/// How long media and signaling may take to arrive on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// A cardiology consultation between Biru's nurse and ZJU2's cardiologist, starting
/// `starts_in` from now, booked and (optionally) consented through the store.
async fn consultation(app: &TestApp, starts_in: time::Duration, consented: bool) -> Consultation {
    consultation_with(app, "zju2-cardio-chen", starts_in, consented).await
}

/// The same with another cardiologist.
async fn consultation_with(
    app: &TestApp,
    doctor: &str,
    starts_in: time::Duration,
    consented: bool,
) -> Consultation {
    let now = teleconsult::audit::now_micros();
    let start = now + starts_in;
    let mut consultation = Consultation::booked(
        ConsultationId::from_random(rand_bytes()),
        BookingRequest {
            doctor: UserId::parse(doctor).unwrap(),
            window: Window::new(start, start + time::Duration::minutes(30)).unwrap(),
            patient: PatientRef::parse("BIRU-2026-0042").unwrap(),
            specialty: Specialty::parse("cardiology").unwrap(),
            reason: ClinicalText::required("exertional chest pain at 4,500 m", 100).unwrap(),
            case_summary: ClinicalText::default(),
        },
        InstitutionId::parse("biru-county-hospital").unwrap(),
        InstitutionId::parse(if doctor.starts_with("zju2") {
            "zju2-hospital"
        } else {
            "zj-provincial"
        })
        .unwrap(),
        UserId::parse("biru-nurse-dawa").unwrap(),
        true,
        now - time::Duration::days(1),
    )
    .unwrap();
    let audit = teleconsult::audit::AuditEntry::new(
        Actor::system("test"),
        "scheduling.book_consultation",
        format!("consultation:{}", consultation.id),
        teleconsult::audit::Outcome::Ok,
    );
    app.store
        .create_consultation(&consultation, audit.clone())
        .await
        .unwrap();
    if consented {
        let consent = ConsentRecord::new(
            Consenter::Patient,
            ConsentMethod::Written,
            UserId::parse("biru-nurse-dawa").unwrap(),
            now,
            "",
        )
        .unwrap();
        consultation = consultation.apply(Event::RecordConsent(consent)).unwrap();
        app.store
            .update_consultation(&consultation, audit)
            .await
            .unwrap();
    }
    consultation
}

fn rand_bytes() -> [u8; 10] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&nanos.to_be_bytes()[6..]);
    bytes
}

async fn state(app: &TestApp, id: &ConsultationId) -> ConsultationState {
    app.store.consultation(id).await.unwrap().unwrap().state
}

/// Joins `id` as `user` with the default synthetic media; the join must be admitted.
async fn join(app: &TestApp, user: &str, id: &str) -> Participant {
    Participant::join(app.channel_as(user), user, id, SyntheticMedia::default())
        .await
        .unwrap_or_else(|status| panic!("{user} was refused: {status:?}"))
}

/// The doctor invites `invitee` through the real SchedulingService.
async fn invite(app: &TestApp, id: &str, invitee: &str) {
    app.scheduling_as(DOCTOR)
        .invite_participant(InviteParticipantRequest {
            id: id.to_owned(),
            user_id: invitee.to_owned(),
        })
        .await
        .unwrap_or_else(|status| panic!("inviting {invitee}: {status:?}"));
}

/// Packets `receiver` has had from `publisher`: (audio, video).
fn from(receiver: &Participant, publisher: &str) -> (u64, u64) {
    (
        receiver.received_from(publisher, "audio"),
        receiver.received_from(publisher, "video"),
    )
}

/// What each participant has had from each other one: (receiver, publisher) → counts.
type Counts = HashMap<(String, String), (u64, u64)>;

fn snapshot(participants: &[&Participant]) -> Counts {
    let mut counts = Counts::new();
    for receiver in participants {
        for publisher in participants.iter().filter(|p| p.user != receiver.user) {
            counts.insert(
                (receiver.user.clone(), publisher.user.clone()),
                from(receiver, &publisher.user),
            );
        }
    }
    counts
}

/// Waits until every participant has received, since `before`, more than half a
/// second of audio and of video from every other one.
async fn media_flows(participants: &[&Participant], before: &Counts) {
    // At the default rates each kind is ~50 packets a second.
    const AT_LEAST: u64 = 25;
    let grew = |now: &Counts| {
        now.iter().all(|(pair, (audio, video))| {
            let (audio0, video0) = before.get(pair).copied().unwrap_or_default();
            *audio > audio0 + AT_LEAST && *video > video0 + AT_LEAST
        })
    };
    let flowing = eventually(PATIENCE, || grew(&snapshot(participants))).await;
    let everything: Vec<_> = participants
        .iter()
        .map(|p| (&p.user, p.received.lock().expect("received lock").clone()))
        .collect();
    assert!(
        flowing,
        "media did not flow between every pair; before {before:?}, now {:?}; \
         everything received: {everything:?}",
        snapshot(participants)
    );
}

/// The signaling messages `participant` has had so far, in order.
async fn events(participant: &Participant) -> Vec<Out> {
    participant.events.lock().await.clone()
}

/// Waits until `participant` has had a message matching `wanted`.
async fn receives(participant: &Participant, wanted: impl Fn(&Out) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if participant.events.lock().await.iter().any(&wanted) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ended(participant: &Participant) -> bool {
    participant.ended.load(Ordering::Relaxed)
}

fn offers(events: &[Out]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Out::Description(d) if d.r#type == "offer"))
        .count()
}

/// Waits until consultation `id`'s session log holds `count` records of `action`.
async fn logged(app: &TestApp, id: &str, action: &str, count: usize) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let logged = session_log(app, id)
            .await
            .iter()
            .filter(|e| e.action == action)
            .count();
        if logged >= count {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The session log of consultation `id`, in order.
async fn session_log(app: &TestApp, id: &str) -> Vec<teleconsult::audit::AuditEntry> {
    app.audit_records()
        .await
        .into_iter()
        .map(|r| r.entry)
        .filter(|e| e.target == format!("consultation:{id}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_exchange_audio_and_video_through_the_sfu() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();

    let nurse = Participant::join(
        app.channel_as("biru-nurse-dawa"),
        "biru-nurse-dawa",
        &id,
        SyntheticMedia::default(),
    )
    .await
    .unwrap();
    let doctor = Participant::join(
        app.channel_as("zju2-cardio-chen"),
        "zju2-cardio-chen",
        &id,
        SyntheticMedia::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::InSession
    );

    let flowing = eventually(Duration::from_secs(20), || {
        nurse.received_from("zju2-cardio-chen", "audio") > 100
            && nurse.received_from("zju2-cardio-chen", "video") > 100
            && doctor.received_from("biru-nurse-dawa", "audio") > 100
            && doctor.received_from("biru-nurse-dawa", "video") > 100
    })
    .await;
    assert!(
        flowing,
        "media did not flow both ways: nurse {:?}, doctor {:?}",
        nurse.received, doctor.received
    );

    // Each receives what the other sent (on loopback: nearly all of it once connected).
    let sent = doctor.sent_audio.load(std::sync::atomic::Ordering::Relaxed);
    let got = nurse.received_from("zju2-cardio-chen", "audio");
    assert!(
        got as f64 >= sent as f64 * 0.8,
        "nurse got {got} of {sent} audio packets"
    );

    // The doctor ends the session: both streams end, the consultation awaits its report.
    SessionServiceClient::new(app.channel_as("zju2-cardio-chen"))
        .end_session(EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || nurse
            .ended
            .load(std::sync::atomic::Ordering::Relaxed))
        .await
    );
    assert_eq!(
        state(&app, &consultation.id).await,
        ConsultationState::AwaitingReport
    );

    let actions: Vec<_> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.entry.target == format!("consultation:{id}"))
        .map(|r| r.entry.action)
        .collect();
    for expected in [
        "session.start",
        "session.join",
        "session.ice_state",
        "session.quality",
        "session.end",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(app.store.verify_audit().await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_audited() {
    let app = TestApp::spawn().await;
    let consented = consultation(&app, time::Duration::minutes(5), true).await;
    let unconsented =
        consultation_with(&app, "zjpph-altitude-li", time::Duration::minutes(5), false).await;
    let later = consultation(&app, time::Duration::hours(3), true).await;

    let join = |user: &'static str, id: String| {
        let channel = app.channel_as(user);
        async move {
            Participant::join(channel, user, &id, SyntheticMedia::default())
                .await
                .err()
                .map(|s| s.code())
        }
    };
    // Not a participant (another clinic's nurse; an uninvited interpreter).
    assert_eq!(
        join("nagqu-nurse-drolma", consented.id.to_string()).await,
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        join("biru-interpreter-norbu", consented.id.to_string()).await,
        Some(Code::PermissionDenied)
    );
    // No consent; outside the window.
    assert_eq!(
        join("biru-nurse-dawa", unconsented.id.to_string()).await,
        Some(Code::FailedPrecondition)
    );
    assert_eq!(
        join("zju2-cardio-chen", later.id.to_string()).await,
        Some(Code::FailedPrecondition)
    );

    let refusals: Vec<_> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| {
            r.entry.action == "session.join" && r.entry.outcome != teleconsult::audit::Outcome::Ok
        })
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    assert_eq!(
        state(&app, &unconsented.id).await,
        ConsultationState::Scheduled
    );
}
