//! The live consult over real mTLS signaling and real webrtc-rs peers on loopback.

use std::time::Duration;

use teleconsult::audit::Actor;
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, Consultation,
    ConsultationId, ConsultationState, Event, PatientRef,
};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::domain::schedule::Window;
use teleconsult::proto::v1::EndSessionRequest;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use tonic::Code;

use crate::helpers::TestApp;
use teleconsult::relay::synthetic::{
    SyntheticMedia, SyntheticParticipant as Participant, eventually,
};

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
