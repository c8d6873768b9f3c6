//! A synthetic participant: a real WebRTC peer (webrtc-rs) that joins a session over
//! the broker's gRPC signaling, publishes generated Opus and VP8 RTP at a chosen
//! bitrate, and counts (and times) what it receives from each other participant.
//! `teleconsult demo`, the SFU benchmark and the session tests use it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtc::ice::network_type::NetworkType;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{Mutex, mpsc};
use tonic::transport::Channel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};
use webrtc::runtime::Runtime;

use crate::proto::v1 as pb;
use crate::proto::v1::session_service_client::SessionServiceClient;
use crate::proto::v1::signal_request::Message as In;
use crate::proto::v1::signal_response::Message as Out;

/// Which transports the participant's ICE may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// UDP is blocked (a firewalled clinic): ICE over TCP only.
    TcpOnly,
}

/// What the participant sends.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticMedia {
    /// Bits per second of Opus-like audio in 20 ms frames (48 kbit/s: 120-byte frames).
    pub audio_bps: u32,
    /// Bits per second of VP8-like video at 25 frames a second, in packets of at most
    /// 1,200 bytes.
    pub video_bps: u32,
    pub transport: Transport,
    /// Record one-way latencies of received packets (sender and receiver share a clock
    /// when they run on one machine).
    pub measure_latency: bool,
}

impl Default for SyntheticMedia {
    /// A consult over a thin plateau link: 48 kbit/s audio, 300 kbit/s video.
    fn default() -> Self {
        Self {
            audio_bps: 48_000,
            video_bps: 300_000,
            transport: Transport::Udp,
            measure_latency: false,
        }
    }
}

/// Packets received, by (publisher, kind).
pub type Received = Arc<std::sync::Mutex<HashMap<(String, &'static str), u64>>>;

pub struct SyntheticParticipant {
    pub user: String,
    pub pc: Arc<dyn PeerConnection>,
    to_broker: mpsc::Sender<pb::SignalRequest>,
    pub received: Received,
    /// One-way latencies of received packets, in microseconds (when measured).
    pub latencies_us: Arc<std::sync::Mutex<Vec<u32>>>,
    pub sent_audio: Arc<AtomicU64>,
    pub sent_video: Arc<AtomicU64>,
    pub connected: Arc<AtomicBool>,
    /// Every signaling message the broker sent, in order.
    pub events: Arc<Mutex<Vec<Out>>>,
    pub ended: Arc<AtomicBool>,
    sending: Arc<AtomicBool>,
}

struct Events {
    to_broker: mpsc::Sender<pb::SignalRequest>,
    received: Received,
    latencies_us: Option<Arc<std::sync::Mutex<Vec<u32>>>>,
    connected: Arc<AtomicBool>,
    /// Behind a firewall that admits no incoming connections: offer only candidates
    /// that connect out.
    active_tcp_only: bool,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            if self.active_tcp_only && init.candidate.contains("tcptype passive") {
                return;
            }
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

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Relaxed,
        );
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // The broker names each forwarded track's stream after its publisher.
        let publisher = track.stream_id().await;
        let kind = if track.kind().await == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let received = self.received.clone();
        let latencies = self.latencies_us.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                *received
                    .lock()
                    .expect("received lock")
                    .entry((publisher.clone(), kind))
                    .or_default() += 1;
                if let Some(latencies) = &latencies
                    && let Some(sent) = packet.payload.get(1..9)
                {
                    let sent = u64::from_be_bytes(sent.try_into().expect("8 bytes"));
                    let latency = now_micros().saturating_sub(sent);
                    latencies
                        .lock()
                        .expect("latency lock")
                        .push(u32::try_from(latency).unwrap_or(u32::MAX));
                }
            }
        });
    }
}

fn local_track(kind: RtpCodecKind, user: &str, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    let (codec, name) = match kind {
        RtpCodecKind::Audio => (
            RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            "microphone",
        ),
        _ => (
            RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            "camera",
        ),
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        user.to_owned(),
        format!("{user}-{name}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// A payload of `size` bytes: a leading marker byte (VP8: start of partition), then
/// the send time in microseconds, then filler.
fn payload(first: u8, size: usize) -> bytes::Bytes {
    let mut payload = Vec::with_capacity(size.max(9));
    payload.push(first);
    payload.extend_from_slice(&now_micros().to_be_bytes());
    payload.resize(size.max(9), 0x5a);
    bytes::Bytes::from(payload)
}

impl SyntheticParticipant {
    /// Joins `consultation` and answers the broker's offers; media starts once
    /// connected. A refused join returns the broker's status.
    pub async fn join(
        channel: Channel,
        user: &str,
        consultation: &str,
        media: SyntheticMedia,
    ) -> Result<SyntheticParticipant, tonic::Status> {
        Self::join_with_runtime(channel, user, consultation, media, None).await
    }

    /// The same, with the participant's sockets, timers and tasks on `runtime` (tests
    /// pass one that delays and drops datagrams, to stand in for a plateau link).
    pub async fn join_over(
        channel: Channel,
        user: &str,
        consultation: &str,
        media: SyntheticMedia,
        runtime: Arc<dyn Runtime>,
    ) -> Result<SyntheticParticipant, tonic::Status> {
        Self::join_with_runtime(channel, user, consultation, media, Some(runtime)).await
    }

    async fn join_with_runtime(
        channel: Channel,
        user: &str,
        consultation: &str,
        media: SyntheticMedia,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Result<SyntheticParticipant, tonic::Status> {
        let (to_broker, outgoing) = mpsc::channel::<pb::SignalRequest>(256);
        let join = pb::SignalRequest {
            message: Some(In::Join(pb::JoinSession {
                consultation_id: consultation.to_owned(),
            })),
        };
        to_broker
            .send(join)
            .await
            .map_err(|_| tonic::Status::internal("signaling queue closed"))?;
        let mut incoming = SessionServiceClient::new(channel)
            .join(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        // A refused join is an error status on the stream.
        let first = incoming
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unavailable("the broker closed the session stream"))?;

        let webrtc_error = |e: webrtc::error::Error| tonic::Status::internal(e.to_string());
        let received: Received = Arc::default();
        let latencies_us = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let mut engine = super::media::media_engine().map_err(webrtc_error)?;
        let registry =
            register_default_interceptors(Registry::new(), &mut engine).map_err(webrtc_error)?;
        let (udp, tcp): (Vec<String>, Vec<String>) = match media.transport {
            Transport::Udp => (vec!["127.0.0.1:0".into()], vec![]),
            // No UDP socket. webrtc-rs derives its active ICE-TCP candidate (the one
            // that dials the broker's passive candidates) from a bound TCP address, so
            // one is bound; its passive candidate is never sent to the broker.
            Transport::TcpOnly => (vec![], vec!["127.0.0.1:0".into()]),
        };
        let mut settings = SettingEngineBuilder::new().with_include_loopback_candidate(true);
        if media.transport == Transport::TcpOnly {
            settings = settings.with_network_types(vec![NetworkType::Tcp4]);
        }
        let mut builder = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(Events {
                to_broker: to_broker.clone(),
                received: received.clone(),
                latencies_us: media.measure_latency.then(|| latencies_us.clone()),
                connected: connected.clone(),
                active_tcp_only: media.transport == Transport::TcpOnly,
            }))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp);
        if let Some(runtime) = runtime {
            builder = builder.with_runtime(runtime);
        }
        let pc: Arc<dyn PeerConnection> = Arc::new(builder.build().await.map_err(webrtc_error)?);
        let seed = user
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let (audio_ssrc, video_ssrc) = (seed | 1, seed.wrapping_add(1000) | 1);
        let audio = local_track(RtpCodecKind::Audio, user, audio_ssrc);
        let video = local_track(RtpCodecKind::Video, user, video_ssrc);
        let events = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        if let Some(message) = first.message {
            events.lock().await.push(message);
        }
        let participant = SyntheticParticipant {
            user: user.to_owned(),
            pc: pc.clone(),
            to_broker: to_broker.clone(),
            received,
            latencies_us,
            sent_audio: Arc::default(),
            sent_video: Arc::default(),
            connected,
            events: events.clone(),
            ended: ended.clone(),
            sending: Arc::new(AtomicBool::new(true)),
        };
        tokio::spawn(answer_offers(
            incoming,
            pc,
            to_broker,
            [audio.clone(), video.clone()],
            events,
            ended,
        ));
        tokio::spawn(send_media(
            media,
            [(audio, audio_ssrc), (video, video_ssrc)],
            participant.sent_audio.clone(),
            participant.sent_video.clone(),
            participant.sending.clone(),
            participant.connected.clone(),
        ));
        Ok(participant)
    }

    /// Packets received from `publisher` of `kind` so far.
    pub fn received_from(&self, publisher: &str, kind: &'static str) -> u64 {
        self.received
            .lock()
            .expect("received lock")
            .get(&(publisher.to_owned(), kind))
            .copied()
            .unwrap_or(0)
    }

    pub async fn send(&self, message: In) {
        let _ = self
            .to_broker
            .send(pb::SignalRequest {
                message: Some(message),
            })
            .await;
    }

    /// Stops sending media and leaves the session.
    pub async fn leave(&self) {
        self.sending.store(false, Ordering::Relaxed);
        self.send(In::Leave(true)).await;
        let _ = self.pc.close().await;
    }
}

/// Answers every offer (attaching our microphone and camera the first time) and
/// applies every candidate, until the broker ends the stream.
async fn answer_offers(
    mut incoming: tonic::Streaming<pb::SignalResponse>,
    pc: Arc<dyn PeerConnection>,
    to_broker: mpsc::Sender<pb::SignalRequest>,
    tracks: [Arc<TrackLocalStaticRTP>; 2],
    events: Arc<Mutex<Vec<Out>>>,
    ended: Arc<AtomicBool>,
) {
    let mut tracks_added = false;
    // Candidates that arrive before the first offer wait for it (trickle ICE does not
    // order them); a TCP-only participant cannot do without the broker's passive one.
    let mut early: Vec<RTCIceCandidateInit> = Vec::new();
    while let Ok(Some(response)) = incoming.message().await {
        let Some(message) = response.message else {
            continue;
        };
        match &message {
            Out::Description(offer) => {
                let answered = async {
                    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp.clone())?)
                        .await?;
                    for candidate in early.drain(..) {
                        let _ = pc.add_ice_candidate(candidate).await;
                    }
                    if !tracks_added {
                        // Reuses the broker's receive-only sections for our media.
                        for track in &tracks {
                            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
                        }
                        tracks_added = true;
                    }
                    let answer = pc.create_answer(None).await?;
                    pc.set_local_description(answer.clone()).await?;
                    Ok::<_, webrtc::error::Error>(answer.sdp)
                }
                .await;
                let sdp = match answered {
                    Ok(sdp) => sdp,
                    Err(error) => {
                        tracing::warn!(%error, "synthetic participant could not answer");
                        break;
                    }
                };
                let reply = pb::SignalRequest {
                    message: Some(In::Description(pb::SessionDescription {
                        r#type: "answer".into(),
                        sdp,
                    })),
                };
                if to_broker.send(reply).await.is_err() {
                    break;
                }
            }
            Out::Candidate(candidate) => {
                let init = candidate_init(candidate);
                if pc.remote_description().await.is_none() {
                    early.push(init);
                } else {
                    let _ = pc.add_ice_candidate(init).await;
                }
            }
            Out::Ended(_) => ended.store(true, Ordering::Relaxed),
            _ => {}
        }
        events.lock().await.push(message);
    }
    ended.store(true, Ordering::Relaxed);
}

/// A candidate from the broker as webrtc-rs takes it (empty strings are absent fields).
pub fn candidate_init(candidate: &pb::IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.candidate.clone(),
        sdp_mid: Some(candidate.sdp_mid.clone()).filter(|m| !m.is_empty()),
        sdp_mline_index: u16::try_from(candidate.sdp_mline_index).ok(),
        username_fragment: Some(candidate.username_fragment.clone()).filter(|u| !u.is_empty()),
        ..Default::default()
    }
}

/// 20 ms audio frames and 25 fps video frames at the configured bitrates.
async fn send_media(
    media: SyntheticMedia,
    tracks: [(Arc<TrackLocalStaticRTP>, u32); 2],
    sent_audio: Arc<AtomicU64>,
    sent_video: Arc<AtomicU64>,
    sending: Arc<AtomicBool>,
    connected: Arc<AtomicBool>,
) {
    let [(audio, audio_ssrc), (video, video_ssrc)] = tracks;
    let audio_frame = (media.audio_bps / 8 / 50) as usize;
    let video_frame = (media.video_bps / 8 / 25) as usize;
    let video_packets = video_frame.div_ceil(1200).max(1);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut audio_seq, mut video_seq) = (0u16, 0u16);
    let mut tick: u32 = 0;
    while sending.load(Ordering::Relaxed) {
        ticks.tick().await;
        if !connected.load(Ordering::Relaxed) {
            continue;
        }
        tick = tick.wrapping_add(1);
        if audio_frame > 0 {
            let mut packet = rtp::Packet::default();
            packet.header.version = 2;
            packet.header.payload_type = 111;
            packet.header.sequence_number = audio_seq;
            packet.header.timestamp = tick.wrapping_mul(960);
            packet.header.ssrc = audio_ssrc;
            packet.payload = payload(0xf8, audio_frame);
            if audio.write_rtp(packet).await.is_ok() {
                sent_audio.fetch_add(1, Ordering::Relaxed);
            }
            audio_seq = audio_seq.wrapping_add(1);
        }
        if video_frame > 0 && tick % 2 == 0 {
            for part in 0..video_packets {
                let mut packet = rtp::Packet::default();
                packet.header.version = 2;
                packet.header.payload_type = 96;
                packet.header.sequence_number = video_seq;
                packet.header.timestamp = tick.wrapping_mul(1800);
                packet.header.ssrc = video_ssrc;
                packet.header.marker = part + 1 == video_packets;
                // VP8 payload descriptor: S (start of partition) on a frame's first packet.
                let first = if part == 0 { 0x10 } else { 0x00 };
                packet.payload = payload(first, video_frame / video_packets);
                if video.write_rtp(packet).await.is_ok() {
                    sent_video.fetch_add(1, Ordering::Relaxed);
                }
                video_seq = video_seq.wrapping_add(1);
            }
        }
    }
}

/// Waits until `condition` holds, polling, for at most `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}
