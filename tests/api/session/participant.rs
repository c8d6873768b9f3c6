//! A real WebRTC participant (webrtc-rs) that joins a session over the broker's mTLS
//! gRPC signaling, publishes synthetic Opus and VP8 RTP, and counts what it receives
//! from each other participant.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::proto::v1::signal_request::Message as In;
use teleconsult::proto::v1::signal_response::Message as Out;
use tokio::sync::{Mutex, mpsc};
use tonic::transport::Channel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

/// Packets received, by (publisher, kind).
pub type Received = Arc<std::sync::Mutex<HashMap<(String, &'static str), u64>>>;

/// Which transports the participant's ICE may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// UDP is blocked: ICE-TCP only (active, to the broker's passive candidates).
    TcpOnly,
}

pub struct Participant {
    pub user: String,
    pub pc: Arc<dyn PeerConnection>,
    to_broker: mpsc::Sender<pb::SignalRequest>,
    pub received: Received,
    pub sent_audio: Arc<AtomicU64>,
    pub sent_video: Arc<AtomicU64>,
    pub connected: Arc<AtomicBool>,
    pub events: Arc<Mutex<Vec<Out>>>,
    pub ended: Arc<AtomicBool>,
    sending: Arc<AtomicBool>,
}

struct Events {
    to_broker: mpsc::Sender<pb::SignalRequest>,
    received: Received,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
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

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Relaxed,
        );
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

fn local_track(kind: RtpCodecKind, user: &str, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    let codec = match kind {
        RtpCodecKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        _ => RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    };
    let name = if kind == RtpCodecKind::Audio {
        "microphone"
    } else {
        "camera"
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

impl Participant {
    /// Joins `consultation` and starts answering the broker's offers. Returns the
    /// gRPC status if the broker refuses the join.
    pub async fn join(
        channel: Channel,
        user: &str,
        consultation: &str,
        transport: Transport,
    ) -> Result<Participant, tonic::Status> {
        let (to_broker, outgoing) = mpsc::channel::<pb::SignalRequest>(256);
        to_broker
            .send(pb::SignalRequest {
                message: Some(In::Join(pb::JoinSession {
                    consultation_id: consultation.to_owned(),
                })),
            })
            .await
            .unwrap();
        let mut client = SessionServiceClient::new(channel);
        let mut incoming = client
            .join(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        // The broker answers a refused join with an error status on the stream.
        let first = incoming
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unknown("stream ended"))?;

        let received: Received = Arc::default();
        let connected = Arc::new(AtomicBool::new(false));
        let mut engine = MediaEngine::default();
        engine.register_default_codecs().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
        let (udp, tcp): (Vec<String>, Vec<String>) = match transport {
            Transport::Udp => (vec!["127.0.0.1:0".into()], vec![]),
            Transport::TcpOnly => (vec![], vec![]),
        };
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
                .with_handler(Arc::new(Events {
                    to_broker: to_broker.clone(),
                    received: received.clone(),
                    connected: connected.clone(),
                }))
                .with_udp_addrs(udp)
                .with_tcp_addrs(tcp)
                .build()
                .await
                .unwrap(),
        );
        let seed = user
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let (audio_ssrc, video_ssrc) = (seed | 1, seed.wrapping_add(1000) | 1);
        let audio = local_track(RtpCodecKind::Audio, user, audio_ssrc);
        let video = local_track(RtpCodecKind::Video, user, video_ssrc);
        let events = Arc::new(Mutex::new(vec![]));
        let ended = Arc::new(AtomicBool::new(false));
        let participant = Participant {
            user: user.to_owned(),
            pc: pc.clone(),
            to_broker: to_broker.clone(),
            received,
            sent_audio: Arc::default(),
            sent_video: Arc::default(),
            connected,
            events: events.clone(),
            ended: ended.clone(),
            sending: Arc::new(AtomicBool::new(true)),
        };
        if let Some(message) = first.message {
            events.lock().await.push(message);
        }

        // Answer every offer; apply every candidate.
        let signaling_pc = pc.clone();
        let (signaling_audio, signaling_video) = (audio.clone(), video.clone());
        tokio::spawn(async move {
            let mut tracks_added = false;
            while let Ok(Some(response)) = incoming.message().await {
                let Some(message) = response.message else {
                    continue;
                };
                match &message {
                    Out::Description(offer) => {
                        let offer = RTCSessionDescription::offer(offer.sdp.clone()).unwrap();
                        signaling_pc.set_remote_description(offer).await.unwrap();
                        if !tracks_added {
                            // Reuses the broker's receive-only sections for our media.
                            signaling_pc
                                .add_track(signaling_audio.clone() as Arc<dyn TrackLocal>)
                                .await
                                .unwrap();
                            signaling_pc
                                .add_track(signaling_video.clone() as Arc<dyn TrackLocal>)
                                .await
                                .unwrap();
                            tracks_added = true;
                        }
                        let answer = signaling_pc.create_answer(None).await.unwrap();
                        signaling_pc
                            .set_local_description(answer.clone())
                            .await
                            .unwrap();
                        let reply = pb::SignalRequest {
                            message: Some(In::Description(pb::SessionDescription {
                                r#type: "answer".into(),
                                sdp: answer.sdp,
                            })),
                        };
                        if to_broker.send(reply).await.is_err() {
                            break;
                        }
                    }
                    Out::Candidate(candidate) => {
                        let init = RTCIceCandidateInit {
                            candidate: candidate.candidate.clone(),
                            sdp_mid: Some(candidate.sdp_mid.clone()).filter(|m| !m.is_empty()),
                            sdp_mline_index: u16::try_from(candidate.sdp_mline_index).ok(),
                            username_fragment: Some(candidate.username_fragment.clone())
                                .filter(|u| !u.is_empty()),
                            ..Default::default()
                        };
                        let _ = signaling_pc.add_ice_candidate(init).await;
                    }
                    Out::Ended(_) => ended.store(true, Ordering::Relaxed),
                    _ => {}
                }
                events.lock().await.push(message);
            }
            ended.store(true, Ordering::Relaxed);
        });

        // 20 ms Opus frames; 25 fps video of 3 packets a frame.
        let (sent_audio, sent_video, sending) = (
            participant.sent_audio.clone(),
            participant.sent_video.clone(),
            participant.sending.clone(),
        );
        let connected = participant.connected.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            let (mut audio_seq, mut video_seq) = (0u16, 0u16);
            let mut tick: u32 = 0;
            while sending.load(Ordering::Relaxed) {
                ticks.tick().await;
                if !connected.load(Ordering::Relaxed) {
                    continue;
                }
                tick += 1;
                let mut packet = rtp::Packet::default();
                packet.header.version = 2;
                packet.header.payload_type = 111;
                packet.header.sequence_number = audio_seq;
                packet.header.timestamp = tick.wrapping_mul(960);
                packet.header.ssrc = audio_ssrc;
                packet.payload = bytes::Bytes::from(vec![0xf8; 120]);
                if audio.write_rtp(packet).await.is_ok() {
                    sent_audio.fetch_add(1, Ordering::Relaxed);
                }
                audio_seq = audio_seq.wrapping_add(1);
                if tick % 2 == 0 {
                    for part in 0..3u8 {
                        let mut packet = rtp::Packet::default();
                        packet.header.version = 2;
                        packet.header.payload_type = 96;
                        packet.header.sequence_number = video_seq;
                        packet.header.timestamp = tick.wrapping_mul(1800);
                        packet.header.ssrc = video_ssrc;
                        packet.header.marker = part == 2;
                        // VP8 payload descriptor: start of partition on the first packet.
                        let mut payload = vec![if part == 0 { 0x10 } else { 0x00 }];
                        payload.extend(std::iter::repeat_n(0x5a, 1000));
                        packet.payload = bytes::Bytes::from(payload);
                        if video.write_rtp(packet).await.is_ok() {
                            sent_video.fetch_add(1, Ordering::Relaxed);
                        }
                        video_seq = video_seq.wrapping_add(1);
                    }
                }
            }
        });
        Ok(participant)
    }

    /// Packets received from `publisher` of `kind` so far.
    pub fn received_from(&self, publisher: &str, kind: &'static str) -> u64 {
        self.received
            .lock()
            .unwrap()
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

    /// Stops sending media and leaves.
    pub async fn leave(&self) {
        self.sending.store(false, Ordering::Relaxed);
        self.send(In::Leave(true)).await;
        let _ = self.pc.close().await;
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
