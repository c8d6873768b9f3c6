//! ICE-TCP on one shared port: the first-frame parser, the candidates the broker
//! advertises, the mux's routing, and two TCP-only clients of one room reaching their
//! broker peer connections through one port with media flowing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::stun::attributes::{ATTR_SOFTWARE, ATTR_USERNAME};
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, TransactionId};
use rtc::stun::textattrs::TextAttribute;
use teleconsult::domain::consultation::ConsultationId;
use teleconsult::domain::session::SessionRole;
use teleconsult::relay::ice_tcp::{
    FirstFrameError, IceTcpLimits, IceTcpMux, MAX_FIRST_FRAME, first_frame_ufrag,
};
use teleconsult::relay::media::{self, Advertisement, MediaSettings};
use teleconsult::relay::room::{Member, Room};
use teleconsult::relay::signal::{IceCandidate, ParticipantInfo, ToParticipant};
use teleconsult::relay::synthetic::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};

const PATIENCE: Duration = Duration::from_secs(20);

/// Quiet unless `TEST_LOG` names a filter, e.g. `TEST_LOG=teleconsult=debug,rtc_ice=debug`.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    }
}

/// A STUN message of `kind` with a SOFTWARE attribute (odd length, so padded) and the
/// USERNAME `username`, framed as RFC 4571 frames it.
fn framed(kind: rtc::stun::message::MessageType, username: &str) -> Vec<u8> {
    let mut message = Message::new();
    message
        .build(&[
            Box::new(kind),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_SOFTWARE, "clinic".into())),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
        ])
        .unwrap();
    frame(&message.raw)
}

fn frame(packet: &[u8]) -> Vec<u8> {
    let mut framed = u16::try_from(packet.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    framed
}

#[test]
fn the_broker_ufrag_is_the_first_half_of_the_username() {
    let request = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    assert_eq!(first_frame_ufrag(&request), Ok(Some("brokerufrag")));
    // What follows the first frame is the next frame's, not the parser's business.
    let mut two = request.clone();
    two.extend_from_slice(&request);
    assert_eq!(first_frame_ufrag(&two), Ok(Some("brokerufrag")));
    // Fewer bytes: not yet.
    for end in 0..request.len() {
        assert_eq!(first_frame_ufrag(&request[..end]), Ok(None), "{end} bytes");
    }
}

#[test]
fn frames_of_impossible_length_are_refused_at_once() {
    for length in [0u16, 19, MAX_FIRST_FRAME as u16 + 1, u16::MAX] {
        assert_eq!(
            first_frame_ufrag(&length.to_be_bytes()),
            Err(FirstFrameError::Length(usize::from(length)))
        );
    }
    // TLS and HTTP open with bytes no binding request's length can have.
    for other in [&[0x16, 0x03, 0x01, 0x02, 0x00][..], b"GET / HTTP/1.1\r\n"] {
        assert!(matches!(
            first_frame_ufrag(other),
            Err(FirstFrameError::Length(_))
        ));
    }
}

#[test]
fn other_first_frames_are_refused() {
    let not_binding_request = |bytes: &[u8]| {
        assert_eq!(
            first_frame_ufrag(bytes),
            Err(FirstFrameError::NotBindingRequest)
        );
    };
    not_binding_request(&framed(BINDING_SUCCESS, "brokerufrag:clientufrag"));
    let mut cookie = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    cookie[2 + 4] ^= 0xff;
    not_binding_request(&cookie);
    // An RTP packet (version 2) of plausible length.
    let mut rtp = vec![0x80, 0x60, 0x00, 0x01];
    rtp.resize(120, 0);
    not_binding_request(&frame(&rtp));
    // The STUN length disagrees with the frame's.
    let mut request = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    request.extend_from_slice(&[0; 4]);
    let frame_length = u16::try_from(request.len() - 2).unwrap();
    request[..2].copy_from_slice(&frame_length.to_be_bytes());
    not_binding_request(&request);
}

#[test]
fn a_binding_request_needs_a_well_formed_username() {
    assert_eq!(
        first_frame_ufrag(&framed(BINDING_REQUEST, "no-colon")),
        Err(FirstFrameError::Malformed)
    );
    assert_eq!(
        first_frame_ufrag(&framed(BINDING_REQUEST, ":clientufrag")),
        Err(FirstFrameError::Malformed)
    );
    let mut message = Message::new();
    message
        .build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId::new())])
        .unwrap();
    assert_eq!(
        first_frame_ufrag(&frame(&message.raw)),
        Err(FirstFrameError::NoUsername)
    );
    // An attribute that claims more bytes than the message has.
    let mut request = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    let software_length = 2 + 20 + 2;
    request[software_length..software_length + 2].copy_from_slice(&0x00ffu16.to_be_bytes());
    assert_eq!(first_frame_ufrag(&request), Err(FirstFrameError::Malformed));
    // A username that is not UTF-8.
    let mut request = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    let at = request.len() - 2;
    request[at] = 0xff;
    assert_eq!(first_frame_ufrag(&request), Err(FirstFrameError::Malformed));
}

proptest! {
    #[test]
    fn any_bytes_are_answered_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..1100)) {
        let _ = first_frame_ufrag(&bytes);
    }

    #[test]
    fn any_ice_ufrags_are_read_back(
        ours in "[A-Za-z0-9+/]{4,256}",
        theirs in "[A-Za-z0-9+/]{4,256}",
    ) {
        let request = framed(BINDING_REQUEST, &format!("{ours}:{theirs}"));
        prop_assert_eq!(first_frame_ufrag(&request), Ok(Some(ours.as_str())));
    }
}

fn shared_port_settings(mux: &IceTcpMux, public_ips: &[&str]) -> MediaSettings {
    MediaSettings {
        bind_ip: [127, 0, 0, 1].into(),
        public_ips: public_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        udp: false,
        ice_tcp: Some(mux.local_addr()),
        ice_tcp_mux: Some(mux.clone()),
        ..MediaSettings::default()
    }
}

#[tokio::test]
async fn candidates_are_advertised_at_the_public_address_and_the_shared_port() {
    let mux = IceTcpMux::bind("127.0.0.1:0".parse().unwrap(), IceTcpLimits::default()).unwrap();
    let port = mux.local_addr().port();
    let advertisement = Advertisement::new(&shared_port_settings(&mux, &["203.0.113.7"]));
    let passive = "candidate:1 1 tcp 1671430143 10.0.0.5 40123 typ host tcptype passive";
    assert_eq!(
        advertisement.candidate(passive).unwrap(),
        format!("candidate:1 1 tcp 1671430143 203.0.113.7 {port} typ host tcptype passive")
    );
    let active = "candidate:2 1 tcp 1671430143 10.0.0.5 9 typ host tcptype active";
    assert_eq!(advertisement.candidate(active), None);
    let udp = "candidate:3 1 udp 2130706431 10.0.0.5 50000 typ host";
    assert_eq!(
        advertisement.candidate(udp).unwrap(),
        "candidate:3 1 udp 2130706431 203.0.113.7 50000 typ host"
    );
    let v6 = "candidate:4 1 udp 2130706431 2001:db8::5 50000 typ host";
    assert_eq!(advertisement.candidate(v6).unwrap(), v6);
    let srflx =
        "candidate:5 1 udp 1694498815 198.51.100.1 50000 typ srflx raddr 10.0.0.5 rport 50000";
    assert_eq!(advertisement.candidate(srflx).unwrap(), srflx);
    let sdp = format!("v=0\r\na={passive}\r\na={active}\r\na=mid:0\r\n");
    assert_eq!(
        advertisement.sdp(&sdp),
        format!(
            "v=0\r\na=candidate:1 1 tcp 1671430143 203.0.113.7 {port} typ host tcptype passive\r\na=mid:0\r\n"
        )
    );
    mux.stop();

    let unchanged = Advertisement::new(&MediaSettings::default());
    assert!(unchanged.is_verbatim());
    assert_eq!(unchanged.candidate(active).unwrap(), active);
}

fn quick_limits() -> IceTcpLimits {
    IceTcpLimits {
        max_pending: 4,
        first_frame_timeout: Duration::from_millis(300),
    }
}

/// The client's side of a refused connection sees it closed.
async fn closed_by_the_broker(client: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn the_mux_hands_a_connection_to_the_session_its_ufrag_names() {
    let mux = IceTcpMux::bind("127.0.0.1:0".parse().unwrap(), quick_limits()).unwrap();
    let runtime = mux.runtime("brokerufrag", webrtc::runtime::default_runtime().unwrap());
    let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let candidate_addr = bound.local_addr().unwrap();
    let listener = runtime.wrap_tcp_listener(bound).unwrap();
    assert_eq!(listener.local_addr().unwrap(), mux.local_addr());
    assert!(
        std::net::TcpStream::connect(candidate_addr).is_err(),
        "the ephemeral listener webrtc-rs bound is closed"
    );

    let request = framed(BINDING_REQUEST, "brokerufrag:clientufrag");
    let mut client = tokio::net::TcpStream::connect(mux.local_addr())
        .await
        .unwrap();
    client.write_all(&request).await.unwrap();
    let (stream, peer) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(stream.local_addr().unwrap(), candidate_addr);
    let mut replayed = vec![0u8; request.len()];
    let mut filled = 0;
    while filled < request.len() {
        filled += stream.read(&mut replayed[filled..]).await.unwrap();
    }
    assert_eq!(replayed, request);
    client.write_all(b"next frame").await.unwrap();
    let mut next = [0u8; 10];
    let n = stream.read(&mut next).await.unwrap();
    assert_eq!(&next[..n], &b"next frame"[..n]);
    stream.write_all(b"answer").await.unwrap();
    let mut answer = [0u8; 6];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"answer");

    // Once the session's listener is gone, so is its route.
    drop(listener);
    let mut late = tokio::net::TcpStream::connect(mux.local_addr())
        .await
        .unwrap();
    late.write_all(&request).await.unwrap();
    assert!(closed_by_the_broker(&mut late).await);
    mux.stop();
}

#[tokio::test]
async fn unknown_silent_and_foreign_connections_are_closed() {
    let mux = IceTcpMux::bind("127.0.0.1:0".parse().unwrap(), quick_limits()).unwrap();
    let connect = || tokio::net::TcpStream::connect(mux.local_addr());

    let mut unknown = connect().await.unwrap();
    unknown
        .write_all(&framed(BINDING_REQUEST, "nobody:clientufrag"))
        .await
        .unwrap();
    assert!(closed_by_the_broker(&mut unknown).await);

    let mut tls = connect().await.unwrap();
    tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    assert!(closed_by_the_broker(&mut tls).await);

    let mut silent = connect().await.unwrap();
    assert!(closed_by_the_broker(&mut silent).await);

    // More silent connections than may be pending: each is closed in its turn.
    let mut crowd = Vec::new();
    for _ in 0..10 {
        crowd.push(connect().await.unwrap());
    }
    for client in &mut crowd {
        assert!(closed_by_the_broker(client).await);
    }

    mux.stop();
    let mut after = connect().await;
    if let Ok(client) = &mut after {
        assert!(closed_by_the_broker(client).await);
    }
}

/// A clinic behind a firewall that drops UDP: a webrtc-rs peer with no UDP socket,
/// which reaches the broker by opening TCP connections to its passive candidates.
struct TcpOnlyClient {
    pc: Arc<dyn PeerConnection>,
    member: Arc<Member>,
    received: Arc<AtomicU64>,
    /// What the broker sent: offers and trickled candidates.
    offers: Arc<Mutex<Vec<String>>>,
    candidates: Arc<Mutex<Vec<String>>>,
}

struct ClientEvents {
    to_broker: mpsc::UnboundedSender<IceCandidate>,
    received: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        // The clinic's firewall lets no connection in: only the active candidate goes.
        if let Ok(init) = event.candidate.to_json()
            && !init.candidate.contains("tcptype passive")
        {
            let _ = self.to_broker.send(IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
                username_fragment: init.username_fragment,
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Relaxed,
        );
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

fn microphone(user: &str, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        user.to_owned(),
        format!("{user}-microphone"),
        "microphone".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    )))
}

impl TcpOnlyClient {
    async fn join(room: &Arc<Room>, user: &str, role: SessionRole) -> TcpOnlyClient {
        let (out, mut from_broker) = mpsc::channel(256);
        let info = ParticipantInfo {
            user: user.to_owned(),
            role,
            display_name: user.to_owned(),
        };
        let member = room.join(info, out).await.unwrap();
        let (to_broker, mut candidates_out) = mpsc::unbounded_channel();
        let received = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let mut engine = media::media_engine().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(engine)
                .with_interceptor_registry(registry)
                .with_setting_engine(SettingEngineBuilder::new().build())
                .with_handler(Arc::new(ClientEvents {
                    to_broker,
                    received: received.clone(),
                    connected: connected.clone(),
                }))
                .with_udp_addrs(Vec::<String>::new())
                // webrtc-rs gathers its active TCP candidate from a listener.
                .with_tcp_addrs(vec!["127.0.0.1:0".to_owned()])
                .build()
                .await
                .unwrap(),
        );
        let offers: Arc<Mutex<Vec<String>>> = Arc::default();
        let candidates: Arc<Mutex<Vec<String>>> = Arc::default();
        tokio::spawn({
            let (room, member) = (room.clone(), member.clone());
            async move {
                while let Some(candidate) = candidates_out.recv().await {
                    let _ = room.candidate(&member, candidate).await;
                }
            }
        });
        let ssrc = 0x1000 + u32::try_from(user.len()).unwrap();
        let track = microphone(user, ssrc);
        tokio::spawn({
            let (room, member, pc) = (room.clone(), member.clone(), pc.clone());
            let (offers, candidates) = (Arc::clone(&offers), Arc::clone(&candidates));
            let track = track.clone();
            async move {
                let mut track = Some(track);
                // The broker may trickle a candidate before its offer arrives; it is
                // added once there is a remote description.
                let mut early = Vec::new();
                while let Some(message) = from_broker.recv().await {
                    match message {
                        ToParticipant::Offer(sdp) => {
                            offers.lock().unwrap().push(sdp.clone());
                            let offer = RTCSessionDescription::offer(sdp).unwrap();
                            pc.set_remote_description(offer).await.unwrap();
                            if let Some(track) = track.take() {
                                pc.add_track(track as Arc<dyn TrackLocal>).await.unwrap();
                            }
                            let answer = pc.create_answer(None).await.unwrap();
                            pc.set_local_description(answer.clone()).await.unwrap();
                            room.answer(&member, answer.sdp).await.unwrap();
                            for init in early.drain(..) {
                                let _ = pc.add_ice_candidate(init).await;
                            }
                        }
                        ToParticipant::Candidate(candidate) => {
                            candidates.lock().unwrap().push(candidate.candidate.clone());
                            let init = RTCIceCandidateInit {
                                candidate: candidate.candidate,
                                sdp_mid: candidate.sdp_mid,
                                sdp_mline_index: candidate.sdp_mline_index,
                                username_fragment: candidate.username_fragment,
                                ..Default::default()
                            };
                            if pc.remote_description().await.is_some() {
                                let _ = pc.add_ice_candidate(init).await;
                            } else {
                                early.push(init);
                            }
                        }
                        _ => {}
                    }
                }
            }
        });
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            let mut sequence = 0u16;
            loop {
                ticks.tick().await;
                if !connected.load(Ordering::Relaxed) {
                    continue;
                }
                sequence = sequence.wrapping_add(1);
                let mut packet = rtc::rtp::Packet::default();
                packet.header.version = 2;
                packet.header.payload_type = 111;
                packet.header.sequence_number = sequence;
                packet.header.timestamp = u32::from(sequence) * 960;
                packet.header.ssrc = ssrc;
                packet.payload = bytes::Bytes::from_static(&[0xf8; 120]);
                let _ = track.write_rtp(packet).await;
            }
        });
        TcpOnlyClient {
            pc,
            member,
            received,
            offers,
            candidates,
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The broker's TCP candidates: trickled, and in its offers as `advertisement`
    /// shows them.
    fn tcp_candidates(&self, advertisement: &Advertisement) -> Vec<String> {
        let mut candidates = self.candidates.lock().unwrap().clone();
        for sdp in self.offers.lock().unwrap().iter() {
            let sdp = advertisement.sdp(sdp);
            let offered = sdp
                .lines()
                .filter_map(|line| line.strip_prefix("a="))
                .filter(|line| line.starts_with("candidate:"));
            candidates.extend(offered.map(str::to_owned));
        }
        candidates
            .into_iter()
            .filter(|candidate| candidate.split(' ').nth(2) == Some("tcp"))
            .collect()
    }
}

fn port_of(candidate: &str) -> Option<u16> {
    candidate.split(' ').nth(5)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tcp_only_clients_reach_their_sessions_through_one_port() {
    log_if_asked();
    let mux = IceTcpMux::bind("127.0.0.1:0".parse().unwrap(), IceTcpLimits::default()).unwrap();
    let shared_port: SocketAddr = mux.local_addr();
    let (notes, _noted) = mpsc::unbounded_channel();
    let settings = shared_port_settings(&mux, &[]);
    let room = Room::new(
        ConsultationId::from_random(*b"icetcpmux!"),
        "session-ice-tcp".into(),
        settings.clone(),
        webrtc::runtime::default_runtime().unwrap(),
        notes,
    );
    let nurse = TcpOnlyClient::join(&room, "biru-nurse-dawa", SessionRole::ClinicSide).await;
    let doctor = TcpOnlyClient::join(&room, "zju2-cardio-chen", SessionRole::Doctor).await;

    let flowing = eventually(PATIENCE, || nurse.received() > 50 && doctor.received() > 50).await;

    assert!(
        flowing,
        "audio over the shared port: nurse had {}, doctor {}",
        nurse.received(),
        doctor.received()
    );
    // Offers carry the candidates webrtc-rs gathered, at the ephemeral port it bound
    // (and the mux closed), until the room passes them through the advertisement.
    let advertisement = Advertisement::new(&settings);
    for client in [&nurse, &doctor] {
        let candidates = client.tcp_candidates(&advertisement);
        assert!(!candidates.is_empty());
        for candidate in &candidates {
            assert_eq!(port_of(candidate), Some(shared_port.port()), "{candidate}");
            assert!(candidate.ends_with("tcptype passive"), "{candidate}");
        }
    }

    // An ICE restart keeps the ufrag (the mux's route) and the media.
    room.restart_ice(&nurse.member).await.unwrap();
    let before = nurse.received();
    assert!(
        eventually(PATIENCE, || nurse.received() > before + 50).await,
        "audio after an ICE restart"
    );
    assert!(nurse.offers.lock().unwrap().len() >= 2);

    room.close("the test is over").await;
    let _ = nurse.pc.close().await;
    let _ = doctor.pc.close().await;
    mux.stop();
}
