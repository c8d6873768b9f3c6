//! A browser's media through `Open`/`Signal`: a receive-only webrtc-rs peer (a
//! console without a camera) answers the broker's offers over gRPC-Web on HTTP/2 and
//! gets the cardiologist's audio and video through the SFU.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::proto::v1::signal_request::Message as In;
use teleconsult::proto::v1::signal_response::Message as Out;
use teleconsult::relay::synthetic::{
    SyntheticMedia, SyntheticParticipant, candidate_init, eventually,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCPeerConnectionIceEvent, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

use super::signaling::{PATIENCE, Seen, consultation, open};
use super::web::{Http, WebStream};
use super::*;

/// Packets received, by (publisher, kind).
type Received = Arc<std::sync::Mutex<HashMap<(String, &'static str), u64>>>;

/// The browser's peer connection, receive-only like a console without a camera.
struct Browser {
    to_broker: mpsc::Sender<pb::SignalRequest>,
    received: Received,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Browser {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let candidate = pb::IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid.unwrap_or_default(),
                sdp_mline_index: u32::from(init.sdp_mline_index.unwrap_or_default()),
                username_fragment: init.username_fragment.unwrap_or_default(),
            };
            let _ = self
                .to_broker
                .send(pb::SignalRequest {
                    message: Some(In::Candidate(candidate)),
                })
                .await;
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let publisher = track.stream_id().await;
        let kind = if track.kind().await == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    *received
                        .lock()
                        .unwrap()
                        .entry((publisher.clone(), kind))
                        .or_default() += 1;
                }
            }
        });
    }
}

/// Answers the broker's offers from `stream` through `Signal` until it ends.
async fn answer_offers(
    mut stream: WebStream,
    pc: Arc<dyn PeerConnection>,
    to_broker: mpsc::Sender<pb::SignalRequest>,
    seen: Seen,
) {
    let mut early = Vec::new();
    let end = loop {
        let response = match stream.message::<pb::SignalResponse>().await {
            Ok(Some(response)) => response,
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        };
        let Some(message) = response.message else {
            continue;
        };
        match &message {
            Out::Description(offer) => {
                pc.set_remote_description(RTCSessionDescription::offer(offer.sdp.clone()).unwrap())
                    .await
                    .unwrap();
                for candidate in early.drain(..) {
                    let _ = pc.add_ice_candidate(candidate).await;
                }
                let answer = pc.create_answer(None).await.unwrap();
                pc.set_local_description(answer.clone()).await.unwrap();
                let reply = In::Description(pb::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.sdp,
                });
                let _ = to_broker
                    .send(pb::SignalRequest {
                        message: Some(reply),
                    })
                    .await;
            }
            Out::Candidate(candidate) => {
                let init = candidate_init(candidate);
                if pc.remote_description().await.is_none() {
                    early.push(init);
                } else {
                    let _ = pc.add_ice_candidate(init).await;
                }
            }
            _ => {}
        }
        seen.events.lock().await.push(message);
    };
    *seen.end.lock().await = Some(end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_peer_answering_through_signal_receives_the_doctors_media() {
    let app = TestApp::spawn_with_console().await;
    let consultation = consultation(&app).await;
    let id = consultation.id.to_string();
    let nurse = signed_in(&app, NURSE).await;

    // gRPC-Web over HTTP/2, as a browser talks to a port that offers h2.
    let (channel, stream) = open(&app, Http::Two, &nurse, &id).await.unwrap();
    let (to_broker, mut outgoing) = mpsc::channel::<pb::SignalRequest>(256);
    let refused_signals = Arc::new(AtomicBool::new(false));
    {
        let app_channel = app.console_channel();
        let (nurse, channel, refused_signals) =
            (nurse.clone(), channel.clone(), refused_signals.clone());
        tokio::spawn(async move {
            let mut client = SessionServiceClient::new(app_channel);
            while let Some(message) = outgoing.recv().await {
                let request = with_cookie(
                    pb::SignalMessage {
                        channel: channel.clone(),
                        message: Some(message),
                    },
                    &nurse,
                );
                if let Err(status) = client.signal(request).await {
                    eprintln!("signal refused: {status:?}");
                    refused_signals.store(true, Ordering::Relaxed);
                }
            }
        });
    }
    let received: Received = Arc::default();
    let mut engine = teleconsult::relay::media::media_engine().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(Arc::new(Browser {
                to_broker: to_broker.clone(),
                received: received.clone(),
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .unwrap(),
    );
    let seen = Seen::default();
    tokio::spawn(answer_offers(stream, pc.clone(), to_broker, seen.clone()));

    let doctor = SyntheticParticipant::join(
        app.channel_as(DOCTOR),
        DOCTOR,
        &id,
        SyntheticMedia::default(),
    )
    .await
    .unwrap();
    let from_doctor = |kind| {
        received
            .lock()
            .unwrap()
            .get(&(DOCTOR.to_owned(), kind))
            .copied()
            .unwrap_or(0)
    };
    let flowing = eventually(PATIENCE, || {
        from_doctor("audio") > 25 && from_doctor("video") > 25
    })
    .await;
    assert!(
        flowing,
        "the browser got audio {} and video {} packets from the doctor; signaling {:?}",
        from_doctor("audio"),
        from_doctor("video"),
        seen.events.lock().await
    );
    assert!(
        !refused_signals.load(Ordering::Relaxed),
        "a Signal call was refused"
    );

    // The doctor ends the session: the browser's stream ends with it.
    SessionServiceClient::new(app.channel_as(DOCTOR))
        .end_session(pb::EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(
        seen.has(|m| matches!(m, Out::Ended(_))).await,
        "the browser was not told the session ended"
    );
    assert!(
        matches!(seen.ended(PATIENCE).await, Some(Ok(()))),
        "the Open stream did not end cleanly after the session ended"
    );
    drop(doctor);
    let _ = pc.close().await;
}
