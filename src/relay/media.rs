//! How the broker's peer connections are made: codecs, interceptors (NACK, reports),
//! the addresses media is received on, and the DTLS role.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateType, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::runtime::Runtime;

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
    runtime: Arc<dyn Runtime>,
    handler: Arc<dyn PeerConnectionEventHandler>,
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
    let mut setting_engine = SettingEngineBuilder::new().with_ice_timeouts(
        Some(settings.ice_disconnected_timeout),
        Some(settings.ice_failed_timeout),
        Some(Duration::from_secs(2)),
    );
    if !settings.public_ips.is_empty() {
        setting_engine = setting_engine.with_nat_1to1_ips(
            settings
                .public_ips
                .iter()
                .map(ToString::to_string)
                .collect(),
            RTCIceCandidateType::Host,
        );
    }
    if settings.bind_ip.is_loopback() {
        setting_engine = setting_engine.with_include_loopback_candidate(true);
    }
    let address = vec![format!("{}:0", socket_ip(settings.bind_ip))];
    let none: Vec<String> = Vec::new();
    let connection = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine.build())
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(if settings.udp {
            address.clone()
        } else {
            none.clone()
        })
        .with_tcp_addrs(if settings.tcp { address } else { none })
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
