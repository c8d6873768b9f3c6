//! The browser's half of the live consult: `Open` (a server stream over gRPC-Web)
//! and `Signal` (one call per message, naming the stream's channel), with a clinic
//! nurse on the console and the cardiologist on a real webrtc-rs peer over mTLS.
//! The browser's media through the same signaling is in `browser_media.rs`.

use std::sync::Arc;
use std::time::Duration;

use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, Consultation,
    ConsultationId, Event, PatientRef,
};
use teleconsult::domain::ids::{InstitutionId, Specialty};
use teleconsult::domain::schedule::Window;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::proto::v1::signal_request::Message as In;
use teleconsult::proto::v1::signal_response::Message as Out;
use teleconsult::relay::synthetic::{SyntheticMedia, SyntheticParticipant, eventually};
use tokio::sync::Mutex;

use super::web::{self, Http, WebCall, WebStream};
use super::*;
use crate::directory::audit_head;

/// How long media and signaling may take on a loaded 2-core machine.
pub(super) const PATIENCE: Duration = Duration::from_secs(20);

const OPEN: &str = "/teleconsult.v1.SessionService/Open";

/// A consented cardiology consultation between Biru's nurse and ZJU2's
/// cardiologist, starting in five minutes: joinable now.
pub(super) async fn consultation(app: &TestApp) -> Consultation {
    let now = now_micros();
    let start = now + time::Duration::minutes(5);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut random = [0u8; 10];
    random.copy_from_slice(&nanos.to_be_bytes()[6..]);
    let consultation = Consultation::booked(
        ConsultationId::from_random(random),
        BookingRequest {
            doctor: UserId::parse(DOCTOR).unwrap(),
            window: Window::new(start, start + time::Duration::minutes(30)).unwrap(),
            patient: PatientRef::parse("BIRU-2026-0042").unwrap(),
            specialty: Specialty::parse("cardiology").unwrap(),
            reason: ClinicalText::required("exertional chest pain at 4,500 m", 100).unwrap(),
            case_summary: ClinicalText::default(),
        },
        InstitutionId::parse(BIRU).unwrap(),
        InstitutionId::parse("zju2-hospital").unwrap(),
        UserId::parse(NURSE).unwrap(),
        true,
        now - time::Duration::days(1),
    )
    .unwrap();
    let audit = AuditEntry::new(
        Actor::system("test"),
        "scheduling.book_consultation",
        format!("consultation:{}", consultation.id),
        Outcome::Ok,
    );
    app.store
        .create_consultation(&consultation, audit.clone())
        .await
        .unwrap();
    let consent = ConsentRecord::new(
        Consenter::Patient,
        ConsentMethod::Written,
        UserId::parse(NURSE).unwrap(),
        now,
        "",
    )
    .unwrap();
    let consultation = consultation.apply(Event::RecordConsent(consent)).unwrap();
    app.store
        .update_consultation(&consultation, audit)
        .await
        .unwrap();
    consultation
}

/// What a reader of an `Open` stream has seen.
#[derive(Clone, Default)]
pub(super) struct Seen {
    pub(super) events: Arc<Mutex<Vec<Out>>>,
    /// Set when the stream ends, with how it ended.
    pub(super) end: Arc<Mutex<Option<Result<(), Status>>>>,
}

impl Seen {
    pub(super) async fn has(&self, wanted: impl Fn(&Out) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if self.events.lock().await.iter().any(&wanted) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) async fn ended(&self, within: Duration) -> Option<Result<(), Status>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.end.lock().await.clone() {
                return Some(end);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Opens the session over gRPC-Web as `cookie`'s user; the channel from `joined`
/// and the stream, whose messages after `joined` are read as they come.
pub(super) async fn open(
    app: &TestApp,
    http: Http,
    cookie: &str,
    consultation: &str,
) -> Result<(String, WebStream), Status> {
    let origin = web::same_origin(app);
    let call = WebCall {
        http,
        path: OPEN,
        cookie: Some(cookie),
        origin: Some(&origin),
    };
    let request = pb::JoinSession {
        consultation_id: consultation.to_owned(),
    };
    let mut stream = call.start(app, &request).await.map_err(|(_, s)| s)?;
    let first = stream
        .message::<pb::SignalResponse>()
        .await?
        .ok_or_else(|| Status::internal("the stream ended before joined"))?;
    let Some(Out::Joined(joined)) = first.message else {
        panic!("the first message of Open is joined, not {first:?}");
    };
    assert_eq!(joined.channel.len(), 32, "{joined:?}");
    assert!(!joined.session_id.is_empty());
    Ok((joined.channel, stream))
}

/// Reads `stream` to its end in the background.
fn read(mut stream: WebStream) -> Seen {
    let seen = Seen::default();
    let reader = seen.clone();
    tokio::spawn(async move {
        let end = loop {
            match stream.message::<pb::SignalResponse>().await {
                Ok(Some(response)) => {
                    if let Some(message) = response.message {
                        reader.events.lock().await.push(message);
                    }
                }
                Ok(None) => break Ok(()),
                Err(status) => break Err(status),
            }
        };
        *reader.end.lock().await = Some(end);
    });
    seen
}

async fn signal(
    app: &TestApp,
    cookie: &str,
    channel: &str,
    message: Option<In>,
) -> Result<pb::SignalAck, Status> {
    SessionServiceClient::new(app.console_channel())
        .signal(with_cookie(
            pb::SignalMessage {
                channel: channel.to_owned(),
                message: message.map(|m| pb::SignalRequest { message: Some(m) }),
            },
            cookie,
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn is_offer(message: &Out) -> bool {
    matches!(message, Out::Description(d) if d.r#type == "offer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_opens_the_session_and_signals_on_its_own_channel_only() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let id = consultation.id.to_string();
    let nurse = signed_in(&app, NURSE).await;
    let doctor_cookie = signed_in(&app, DOCTOR).await;

    let (channel, stream) = open(&app, Http::One, &nurse, &id).await.unwrap();
    let seen = read(stream);
    assert!(
        seen.has(is_offer).await,
        "no offer after joined: {:?}",
        seen.events.lock().await
    );

    let doctor = SyntheticParticipant::join(
        app.channel_as(DOCTOR),
        DOCTOR,
        &id,
        SyntheticMedia::default(),
    )
    .await
    .unwrap();
    assert!(
        seen.has(|m| matches!(m, Out::ParticipantJoined(p) if p.user_id == DOCTOR))
            .await,
        "the console was not told the doctor joined: {:?}",
        seen.events.lock().await
    );

    // Another user cannot speak on the nurse's channel, even when in the session.
    let before = audit_head(&app).await;
    refused(
        signal(&app, &doctor_cookie, &channel, Some(In::Leave(true))).await,
        Code::NotFound,
        "channel",
    );
    let refusals = audited_since(&app, before, "session.join").await;
    assert_eq!(outcomes(&refusals), [Outcome::Invalid]);
    assert_eq!(refusals[0].actor.user, DOCTOR);
    refused(
        signal(&app, &nurse, &"f".repeat(32), Some(In::Leave(true))).await,
        Code::NotFound,
        "channel",
    );
    refused(
        signal(
            &app,
            &nurse,
            &channel,
            Some(In::Join(pb::JoinSession {
                consultation_id: id.clone(),
            })),
        )
        .await,
        Code::InvalidArgument,
        "message.join",
    );
    refused(
        signal(&app, &nurse, &channel, None).await,
        Code::InvalidArgument,
        "message",
    );
    // Signal without a cookie is no better.
    refused(
        SessionServiceClient::new(app.console_channel())
            .signal(pb::SignalMessage {
                channel: channel.clone(),
                message: None,
            })
            .await,
        Code::Unauthenticated,
        "not signed in",
    );

    // The nurse's messages reach the others: a mute, then leaving.
    signal(
        &app,
        &nurse,
        &channel,
        Some(In::Mute(pb::MuteState {
            audio_muted: true,
            video_muted: false,
        })),
    )
    .await
    .unwrap();
    let doctor_was_told = |wanted: fn(&Out) -> bool| {
        let events = doctor.events.clone();
        eventually(PATIENCE, move || {
            events
                .try_lock()
                .is_ok_and(|events| events.iter().any(wanted))
        })
    };
    assert!(
        doctor_was_told(|m| matches!(m, Out::Mute(m) if m.user_id == NURSE)).await,
        "the doctor was not told the nurse muted"
    );
    assert!(seen.end.lock().await.is_none(), "the stream is still open");

    signal(&app, &nurse, &channel, Some(In::Leave(true)))
        .await
        .unwrap();
    assert!(
        doctor_was_told(|m| matches!(m, Out::ParticipantLeft(p) if p.user_id == NURSE)).await,
        "the doctor was not told the nurse left"
    );
    refused(
        signal(&app, &nurse, &channel, Some(In::Leave(true))).await,
        Code::NotFound,
        "channel",
    );
    let leaves: Vec<_> = crate::directory::audit_since(&app, before)
        .await
        .into_iter()
        .map(|r| r.entry)
        .filter(|e| e.action == "session.leave" && e.actor.user == NURSE)
        .collect();
    assert_eq!(leaves.len(), 1, "{leaves:#?}");
    assert!(leaves[0].details.contains("left"), "{}", leaves[0].details);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_leave_ends_the_open_stream() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let nurse = signed_in(&app, NURSE).await;
    let (channel, stream) = open(&app, Http::One, &nurse, &consultation.id.to_string())
        .await
        .unwrap();
    let seen = read(stream);
    signal(&app, &nurse, &channel, Some(In::Leave(true)))
        .await
        .unwrap();
    // The browser learns it is out of the session from its stream, which ends.
    let end = seen.ended(Duration::from_secs(10)).await;
    assert!(
        matches!(end, Some(Ok(()))),
        "the Open stream did not end cleanly after Signal{{leave}} ({end:?}); last message {:?}",
        seen.events.lock().await.last()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_again_elsewhere_tells_the_earlier_connection_not_to_come_back() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let id = consultation.id.to_string();
    let nurse = signed_in(&app, NURSE).await;
    // The nurse's first tab, then her tablet.
    let (first_channel, first) = open(&app, Http::One, &nurse, &id).await.unwrap();
    let first = read(first);
    let (second_channel, second) = open(&app, Http::One, &nurse, &id).await.unwrap();
    let second = read(second);
    assert_ne!(first_channel, second_channel);

    assert!(
        first
            .has(|m| matches!(m, Out::Ended(ended) if ended.replaced && ended.reason.contains("another connection")))
            .await,
        "the replaced connection was not told: {:?}",
        first.events.lock().await
    );
    let end = first.ended(Duration::from_secs(10)).await;
    assert!(
        matches!(end, Some(Ok(()))),
        "the replaced stream did not end: {end:?}"
    );
    refused(
        signal(&app, &nurse, &first_channel, Some(In::RestartIce(true))).await,
        Code::NotFound,
        "channel",
    );
    // The new connection holds the session: it gets its offer and may signal.
    assert!(
        second.has(is_offer).await,
        "{:?}",
        second.events.lock().await
    );
    assert!(
        !second
            .events
            .lock()
            .await
            .iter()
            .any(|m| matches!(m, Out::Ended(_))),
        "the new connection was ended too"
    );
    signal(&app, &nurse, &second_channel, Some(In::RestartIce(true)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_open_stream_leaves_the_session() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let id = consultation.id.to_string();
    let nurse = signed_in(&app, NURSE).await;
    let doctor = SyntheticParticipant::join(
        app.channel_as(DOCTOR),
        DOCTOR,
        &id,
        SyntheticMedia::default(),
    )
    .await
    .unwrap();
    let told = |count: usize| {
        let events = doctor.events.clone();
        eventually(PATIENCE, move || {
            events.try_lock().is_ok_and(|events| {
                events
                    .iter()
                    .filter(|m| matches!(m, Out::ParticipantLeft(p) if p.user_id == NURSE))
                    .count()
                    >= count
            })
        })
    };
    for (left, http) in [Http::One, Http::Two].into_iter().enumerate() {
        let (channel, stream) = open(&app, http, &nurse, &id).await.unwrap();
        let before = audit_head(&app).await;
        // The browser tab closes: the connection goes, and the nurse with it.
        drop(stream);
        assert!(
            told(left + 1).await,
            "{http:?}: the doctor was not told the nurse left"
        );
        refused(
            signal(&app, &nurse, &channel, Some(In::Leave(true))).await,
            Code::NotFound,
            "channel",
        );
        let leaves: Vec<_> = crate::directory::audit_since(&app, before)
            .await
            .into_iter()
            .map(|r| r.entry)
            .filter(|e| e.action == "session.leave" && e.actor.user == NURSE)
            .collect();
        assert_eq!(leaves.len(), 1, "{http:?}: {leaves:#?}");
        assert!(
            leaves[0].details.contains("closed the stream"),
            "{http:?}: {}",
            leaves[0].details
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_is_refused_like_joining() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let id = consultation.id.to_string();
    let stranger = signed_in(&app, "nagqu-nurse-drolma").await;
    let nurse = signed_in(&app, NURSE).await;
    for http in [Http::One, Http::Two] {
        let channel = |opened: Result<(String, WebStream), Status>| opened.map(|(c, _)| c);
        refused(
            channel(open(&app, http, &stranger, &id).await),
            Code::PermissionDenied,
            "may not session.join",
        );
        refused(
            channel(open(&app, http, &nurse, "not a consultation id").await),
            Code::InvalidArgument,
            "consultation_id",
        );
        refused(
            channel(open(&app, http, "", &id).await),
            Code::Unauthenticated,
            "not valid",
        );
    }
}
