//! Where the handshake stops completing, and whether the DTLS role or the ICE check
//! budget moves that point. Not part of the suite (about 30 s; it prints a table): run
//! `cargo test --test api impaired::sweep -- --ignored --nocapture`.
//!
//! One broker-side peer connection (the relay's own `media::peer_connection`, or the
//! same with a larger ICE check budget) and one clinic-side peer on the impaired link,
//! wired directly to each other with no signaling server: the broker offers `actpass`,
//! the clinic answers `active` (broker = DTLS server, as with browsers today) or
//! `passive` (broker = DTLS client).
//!
//! Measured: both roles complete up to 3 s round trip, with or without 3 % loss; the
//! clinic connects at the same time in either (about 4.7 round trips), and the broker
//! half a round trip earlier as DTLS server, later as DTLS client. At 4 s nothing
//! connects whatever the role or budget: ICE drops a check whose answer takes longer
//! than 4 s (rtc-ice's fixed `MAX_BINDING_REQUEST_TIMEOUT`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::RTCRtpTransceiverInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use teleconsult::relay::media::{self, MediaSettings};
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    Registry, SettingEngineBuilder, register_default_interceptors,
};

use super::link::{ImpairedRuntime, LinkProfile};

/// Past this, a real client has long given up.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Broker {
    /// `media::peer_connection` as it is.
    AsIs,
    /// The same with ICE checks every 200 ms up to `n` times per pair (default 7).
    CheckBudget(u16),
}

#[derive(Default)]
struct Times {
    ice_connected: Option<Instant>,
    connected: Option<Instant>,
    failed: Option<Instant>,
}

struct Side {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    times: Arc<Mutex<Times>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Side {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state == RTCIceConnectionState::Connected {
            let mut times = self.times.lock().unwrap();
            times.ice_connected.get_or_insert_with(Instant::now);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let mut times = self.times.lock().unwrap();
        match state {
            RTCPeerConnectionState::Connected => {
                times.connected.get_or_insert_with(Instant::now);
            }
            RTCPeerConnectionState::Failed => {
                times.failed.get_or_insert_with(Instant::now);
            }
            _ => {}
        }
    }
}

fn side() -> (
    Arc<Side>,
    mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    Arc<Mutex<Times>>,
) {
    let (candidates, receiver) = mpsc::unbounded_channel();
    let times = Arc::new(Mutex::new(Times::default()));
    let side = Arc::new(Side {
        candidates,
        times: times.clone(),
    });
    (side, receiver, times)
}

async fn broker_peer(broker: Broker, handler: Arc<Side>) -> Arc<dyn PeerConnection> {
    let settings = MediaSettings {
        bind_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        ..MediaSettings::default()
    };
    let runtime = webrtc::runtime::default_runtime().unwrap();
    match broker {
        Broker::AsIs => media::peer_connection(&settings, runtime, handler)
            .await
            .unwrap(),
        Broker::CheckBudget(n) => {
            let mut engine = media::media_engine().unwrap();
            let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
            let settings_engine = SettingEngineBuilder::new()
                .with_ice_timeouts(
                    Some(settings.ice_disconnected_timeout),
                    Some(settings.ice_failed_timeout),
                    Some(Duration::from_secs(2)),
                )
                .with_ice_connection_attempts(Some(Duration::from_millis(200)), Some(n))
                .with_include_loopback_candidate(true)
                .build();
            Arc::new(
                PeerConnectionBuilder::new()
                    .with_configuration(RTCConfigurationBuilder::new().build())
                    .with_media_engine(engine)
                    .with_interceptor_registry(registry)
                    .with_setting_engine(settings_engine)
                    .with_handler(handler)
                    .with_runtime(runtime)
                    .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
                    .build()
                    .await
                    .unwrap(),
            )
        }
    }
}

async fn clinic_peer(
    link: Arc<ImpairedRuntime>,
    answer_as: RTCDtlsRole,
    handler: Arc<Side>,
) -> Arc<dyn PeerConnection> {
    let mut engine = media::media_engine().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
    Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .with_answering_dtls_role(answer_as)
                    .build(),
            )
            .with_handler(handler)
            .with_runtime(link)
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .unwrap(),
    )
}

fn relay_candidates(
    mut from: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    to: Arc<dyn PeerConnection>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(candidate) = from.recv().await {
            let _ = to.add_ice_candidate(candidate).await;
        }
    })
}

fn since(start: Instant, at: Option<Instant>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| format!("{:.2}", (at - start).as_secs_f64()),
    )
}

/// One handshake: the clinic's ICE-connected and connected times, the broker's
/// connected time, in seconds from the answer (or "-").
async fn handshake(profile: LinkProfile, answer_as: RTCDtlsRole, broker: Broker) -> String {
    let link = Arc::new(ImpairedRuntime::new(profile));
    let (broker_side, broker_candidates, broker_times) = side();
    let (clinic_side, clinic_candidates, clinic_times) = side();
    let broker_pc = broker_peer(broker, broker_side).await;
    let clinic_pc = clinic_peer(link.clone(), answer_as, clinic_side).await;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let receive_only = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        broker_pc
            .add_transceiver_from_kind(kind, Some(receive_only))
            .await
            .unwrap();
    }
    let offer = broker_pc.create_offer(None).await.unwrap();
    broker_pc
        .set_local_description(offer.clone())
        .await
        .unwrap();
    clinic_pc.set_remote_description(offer).await.unwrap();
    let answer = clinic_pc.create_answer(None).await.unwrap();
    clinic_pc
        .set_local_description(answer.clone())
        .await
        .unwrap();
    let start = Instant::now();
    broker_pc.set_remote_description(answer).await.unwrap();
    let relays = [
        relay_candidates(broker_candidates, clinic_pc.clone()),
        relay_candidates(clinic_candidates, broker_pc.clone()),
    ];

    let done = || {
        let (clinic, broker) = (clinic_times.lock().unwrap(), broker_times.lock().unwrap());
        (clinic.connected.is_some() && broker.connected.is_some())
            || clinic.failed.is_some()
            || broker.failed.is_some()
    };
    teleconsult::relay::synthetic::eventually(DEADLINE, done).await;
    for relay in relays {
        relay.abort();
    }
    let _ = clinic_pc.close().await;
    let _ = broker_pc.close().await;
    let (clinic, broker_times) = (clinic_times.lock().unwrap(), broker_times.lock().unwrap());
    format!(
        "rtt {:>5} ms loss {:>2.0} % broker {:<16} dtls-server {:<7} | clinic ice {:>5} \
         connected {:>5} failed {:>5} | broker connected {:>5} failed {:>5} | link {}",
        profile.rtt.as_millis(),
        profile.loss * 100.0,
        format!("{broker:?}"),
        if answer_as == RTCDtlsRole::Client {
            "broker"
        } else {
            "clinic"
        },
        since(start, clinic.ice_connected),
        since(start, clinic.connected),
        since(start, clinic.failed),
        since(start, broker_times.connected),
        since(start, broker_times.failed),
        link.counters
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of about 30 s; run by hand"]
async fn dtls_role_and_ice_budget_against_round_trip() {
    let mut runs = Vec::new();
    for rtt in [500, 1000, 1500, 2000, 3000, 4000] {
        for loss in [0.0, 0.03] {
            for answer_as in [RTCDtlsRole::Client, RTCDtlsRole::Server] {
                for broker in [Broker::AsIs, Broker::CheckBudget(40)] {
                    let profile = LinkProfile {
                        rtt: Duration::from_millis(rtt),
                        jitter: Duration::ZERO,
                        loss,
                        seed: 4500 + rtt,
                    };
                    runs.push(tokio::spawn(handshake(profile, answer_as, broker)));
                }
            }
        }
    }
    for run in runs {
        eprintln!("{}", run.await.unwrap());
    }
}
