//! How the broker's peer connections are made: codecs, interceptors (NACK, reports),
//! the addresses media is received on and advertised at, and the DTLS role.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rtc::peer_connection::transport::RTCIceTcpCandidateType;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidate, RTCIceCandidateType, RTCIceConnectionState,
    RTCIceGatheringState, RTCIceProtocol, RTCPeerConnectionIceErrorEvent,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSignalingState, Registry,
    SettingEngineBuilder, register_default_interceptors,
};
use webrtc::runtime::Runtime;

use super::ice_tcp::IceTcpMux;

/// Where and how the SFU receives media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// The address media sockets bind to.
    pub bind_ip: IpAddr,
    /// Addresses clients reach the broker at through a 1:1 NAT; advertised in place of
    /// `bind_ip` in host candidates.
    pub public_ips: Vec<IpAddr>,
    /// Offer ICE over UDP.
    pub udp: bool,
    /// Offer ICE over TCP (passive), for clinics whose firewalls drop UDP.
    pub tcp: bool,
    /// How long ICE waits before calling a connection disconnected and failed. Lossy
    /// plateau links need patience.
    pub ice_disconnected_timeout: Duration,
    pub ice_failed_timeout: Duration,
    /// Where ICE-TCP connections of every session arrive (one port, e.g. 443); `None`
    /// gives each peer connection an ephemeral listener of its own.
    pub ice_tcp: Option<SocketAddr>,
    /// The listener on `ice_tcp`, started by the relay; peer connections use it when set.
    pub ice_tcp_mux: Option<IceTcpMux>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            public_ips: Vec::new(),
            udp: true,
            tcp: true,
            ice_disconnected_timeout: Duration::from_secs(10),
            ice_failed_timeout: Duration::from_secs(30),
            ice_tcp: None,
            ice_tcp_mux: None,
        }
    }
}

/// Opus and VP8 always; H.264 and the rest of the default set where the client offers
/// them (the broker forwards whatever codec the publisher negotiated).
pub fn media_engine() -> webrtc::error::Result<MediaEngine> {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs()?;
    Ok(engine)
}

/// A broker-side peer connection for one participant.
pub async fn peer_connection(
    settings: &MediaSettings,
    mut runtime: Arc<dyn Runtime>,
    mut handler: Arc<dyn PeerConnectionEventHandler>,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let mut engine = media_engine()?;
    // NACK responder and generator, receiver and sender reports, TWCC.
    let registry = register_default_interceptors(
        Registry::new().with(
            rtc::interceptor::Slot::from(14_000),
            KeyframeRequests::default(),
        ),
        &mut engine,
    )?;
    // The broker is the DTLS server. It offers `actpass` and clients (browsers,
    // webrtc-rs) answer `active`; this also holds should it ever answer. Measured on an
    // impaired link (tests/api/session/impaired): either role completes the handshake
    // at the same time for the clinic up to 3 s RTT with 3 % loss, and as the server the
    // broker is ready half an RTT sooner. The limit beyond that is ICE's fixed 4 s
    // check timeout, not DTLS.
    let mut setting_engine = SettingEngineBuilder::new()
        .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
        .with_ice_timeouts(
            Some(settings.ice_disconnected_timeout),
            Some(settings.ice_failed_timeout),
            Some(Duration::from_secs(2)),
        )
        // The broker never resolves browsers' `.local` host candidates: their checks
        // reach it anyway and become peer-reflexive candidates. Left on (QueryOnly),
        // every peer connection joins 224.0.0.251 and fails outright on a host with
        // no multicast route (seen in a network namespace with only `lo`).
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
    if settings.bind_ip.is_loopback() {
        setting_engine = setting_engine.with_include_loopback_candidate(true);
    }
    let address = vec![format!("{}:0", socket_ip(settings.bind_ip))];
    let none: Vec<String> = Vec::new();
    let mut tcp_addrs = if settings.tcp {
        address.clone()
    } else {
        none.clone()
    };
    if let Some(mux) = settings.ice_tcp_mux.as_ref().filter(|_| settings.tcp) {
        // The mux routes by ufrag, so it must be known before the first connection and
        // stay the same: webrtc-rs then reuses it on an ICE restart too.
        let (ufrag, pwd) = ice_credentials();
        setting_engine = setting_engine.with_ice_credentials(ufrag.clone(), pwd);
        runtime = mux.runtime(&ufrag, runtime);
        // Bound on the mux's address so that the candidates name addresses it listens on.
        tcp_addrs = vec![SocketAddr::new(mux.local_addr().ip(), 0).to_string()];
    }
    let advertisement = Advertisement::new(settings);
    if !advertisement.is_verbatim() {
        handler = Arc::new(AdvertisedCandidates {
            handler,
            advertisement,
        });
    }
    let connection = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine.build())
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(if settings.udp { address } else { none })
        .with_tcp_addrs(tcp_addrs)
        .build()
        .await?;
    Ok(Arc::new(connection))
}

fn socket_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A random ICE ufrag (64 bits) and password (128 bits), in hex (ICE characters).
fn ice_credentials() -> (String, String) {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    (hex::encode(&bytes[..8]), hex::encode(&bytes[8..]))
}

/// How the broker's own candidates are shown to clients. webrtc-rs 0.21 derives each
/// candidate from the socket it was gathered on and never applies `nat_1to1_ips`, so
/// the broker rewrites them: host candidates carry the public address (1:1 NAT keeps
/// ports), and with a shared ICE-TCP port the passive TCP candidate carries that port
/// (its ephemeral listener was closed) and the active one is dropped (the broker does
/// not dial clients). Trickled candidates are rewritten as they are gathered; an offer
/// carries the candidates gathered so far and must be sent through
/// [`Advertisement::sdp`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    public_ips: Vec<IpAddr>,
    ice_tcp_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gathered {
    Host,
    TcpPassive,
    TcpActive,
    /// Server or peer reflexive, relayed: not the broker's own address.
    Other,
}

impl Advertisement {
    pub fn new(settings: &MediaSettings) -> Self {
        Self {
            public_ips: settings.public_ips.clone(),
            ice_tcp_port: settings
                .ice_tcp_mux
                .as_ref()
                .filter(|_| settings.tcp)
                .map(|mux| mux.local_addr().port()),
        }
    }

    /// Nothing to rewrite.
    pub fn is_verbatim(&self) -> bool {
        self.public_ips.is_empty() && self.ice_tcp_port.is_none()
    }

    /// Where a candidate gathered at `address` is advertised; `None`: not at all.
    fn address(&self, gathered: Gathered, address: SocketAddr) -> Option<SocketAddr> {
        let public = |address: SocketAddr| match self
            .public_ips
            .iter()
            .find(|ip| ip.is_ipv4() == address.is_ipv4())
        {
            Some(ip) => SocketAddr::new(*ip, address.port()),
            None => address,
        };
        match (gathered, self.ice_tcp_port) {
            (Gathered::Other, _) => Some(address),
            (Gathered::TcpActive, Some(_)) => None,
            (Gathered::TcpPassive, Some(port)) => Some(public(SocketAddr::new(address.ip(), port))),
            _ => Some(public(address)),
        }
    }

    /// A candidate attribute (`candidate:<foundation> <component> <transport> <priority>
    /// <address> <port> typ <type> [<name> <value>]…`) as it is advertised.
    pub fn candidate(&self, candidate: &str) -> Option<String> {
        let mut fields: Vec<&str> = candidate.split(' ').collect();
        let (Some(transport), Some(Ok(ip)), Some(Ok(port)), Some(&"typ"), Some(typ)) = (
            fields.get(2),
            fields.get(4).map(|ip| ip.parse::<IpAddr>()),
            fields.get(5).map(|port| port.parse::<u16>()),
            fields.get(6),
            fields.get(7),
        ) else {
            return Some(candidate.to_owned());
        };
        let tcp_type = fields
            .get(8..)
            .unwrap_or_default()
            .chunks(2)
            .find(|pair| pair[0] == "tcptype")
            .and_then(|pair| pair.get(1).copied());
        let gathered = match (*typ, transport.eq_ignore_ascii_case("tcp"), tcp_type) {
            ("host", true, Some("passive")) => Gathered::TcpPassive,
            ("host", true, Some("active")) => Gathered::TcpActive,
            ("host", _, _) => Gathered::Host,
            _ => Gathered::Other,
        };
        let advertised = self.address(gathered, SocketAddr::new(ip, port))?;
        let (ip, port) = (advertised.ip().to_string(), advertised.port().to_string());
        fields[4] = &ip;
        fields[5] = &port;
        Some(fields.join(" "))
    }

    /// An SDP with its candidate lines as they are advertised.
    pub fn sdp(&self, sdp: &str) -> String {
        sdp.split_inclusive('\n')
            .filter_map(|line| {
                let body = line.trim_end_matches(['\r', '\n']);
                match body.strip_prefix("a=") {
                    Some(candidate) if candidate.starts_with("candidate:") => self
                        .candidate(candidate)
                        .map(|advertised| format!("a={advertised}{}", &line[body.len()..])),
                    _ => Some(line.to_owned()),
                }
            })
            .collect()
    }

    fn ice_candidate(&self, mut candidate: RTCIceCandidate) -> Option<RTCIceCandidate> {
        let Ok(ip) = candidate.address.parse::<IpAddr>() else {
            return Some(candidate);
        };
        let gathered = match (candidate.typ, candidate.protocol, candidate.tcp_type) {
            (RTCIceCandidateType::Host, RTCIceProtocol::Tcp, RTCIceTcpCandidateType::Passive) => {
                Gathered::TcpPassive
            }
            (RTCIceCandidateType::Host, RTCIceProtocol::Tcp, RTCIceTcpCandidateType::Active) => {
                Gathered::TcpActive
            }
            (RTCIceCandidateType::Host, _, _) => Gathered::Host,
            _ => Gathered::Other,
        };
        let advertised = self.address(gathered, SocketAddr::new(ip, candidate.port))?;
        candidate.address = advertised.ip().to_string();
        candidate.port = advertised.port();
        Some(candidate)
    }
}

/// Passes the room's handler the broker's candidates as they are advertised.
struct AdvertisedCandidates {
    handler: Arc<dyn PeerConnectionEventHandler>,
    advertisement: Advertisement,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for AdvertisedCandidates {
    async fn on_negotiation_needed(&self) {
        self.handler.on_negotiation_needed().await;
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Some(candidate) = self.advertisement.ice_candidate(event.candidate) {
            let event = RTCPeerConnectionIceEvent { candidate, ..event };
            self.handler.on_ice_candidate(event).await;
        }
    }

    async fn on_ice_candidate_error(&self, event: RTCPeerConnectionIceErrorEvent) {
        self.handler.on_ice_candidate_error(event).await;
    }

    async fn on_signaling_state_change(&self, state: RTCSignalingState) {
        self.handler.on_signaling_state_change(state).await;
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.handler.on_ice_connection_state_change(state).await;
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.handler.on_ice_gathering_state_change(state).await;
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.handler.on_connection_state_change(state).await;
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        self.handler.on_data_channel(data_channel).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.handler.on_track(track).await;
    }
}

/// Hands keyframe requests (PLI, FIR) from a participant to the application, so the
/// SFU can pass them to the publisher of the track the participant wants a keyframe
/// of. Everything else stays with the interceptors that act on it.
#[derive(Default)]
pub struct KeyframeRequests {
    read_queue: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write_queue: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for KeyframeRequests
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(
        &mut self,
        mut message: rtc::interceptor::TaggedPacket,
    ) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &message.message.packet
            && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
        {
            message
                .message
                .add(rtc::interceptor::Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(message);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, message: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(message);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, _now: std::time::Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl rtc::interceptor::Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
}
