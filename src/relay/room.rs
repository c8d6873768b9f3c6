//! A session's room: one broker-side peer connection per participant, every incoming
//! track forwarded to every other participant (RTP forwarding, no transcoding).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceConnectionState,
    RTCPeerConnectionIceEvent, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};
use webrtc::runtime::Runtime;

use super::media::{self, MediaSettings};
use super::signal::{IceCandidate, ParticipantInfo, ToParticipant, TrackInfo};
use crate::domain::consultation::ConsultationId;

/// Something a room reports for the session log.
#[derive(Debug, Clone)]
pub enum RoomNote {
    IceState { user: String, state: String },
}

/// Counters of one forwarded track, for the session log and the benchmark.
#[derive(Debug, Default)]
pub struct TrackCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Packets the relay could not hand to a subscriber (its queue was full).
    pub dropped: AtomicU64,
}

/// An incoming track and who receives it.
pub struct Published {
    pub publisher: String,
    pub track_id: String,
    pub kind: RtpCodecKind,
    codec: RTCRtpCodec,
    remote: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    subscribers: std::sync::Mutex<Vec<(String, mpsc::Sender<rtp::Packet>)>>,
    pub counters: TrackCounters,
    last_keyframe_request: std::sync::Mutex<Option<Instant>>,
}

impl Published {
    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            publisher: self.publisher.clone(),
            track_id: self.track_id.clone(),
            kind: kind_name(self.kind),
        }
    }

    /// Asks the publisher for a keyframe, at most twice a second.
    async fn request_keyframe(&self) {
        {
            let mut last = self.last_keyframe_request.lock().expect("keyframe lock");
            if last.is_some_and(|at| at.elapsed() < Duration::from_millis(500)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        };
        let _ = self.remote.write_rtcp(vec![Box::new(pli)]).await;
    }
}

pub fn kind_name(kind: RtpCodecKind) -> &'static str {
    match kind {
        RtpCodecKind::Audio => "audio",
        _ => "video",
    }
}

/// A forwarded track on its way to one subscriber.
struct Subscription {
    publisher: String,
    track_id: String,
    sender: Arc<dyn RtpSender>,
    tasks: Vec<JoinHandle<()>>,
    packets_out: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
}

#[derive(Default)]
struct Negotiation {
    awaiting_answer: bool,
    again: bool,
    restart_ice: bool,
}

/// One participant's side of the room.
pub struct Member {
    pub info: ParticipantInfo,
    pc: Arc<dyn PeerConnection>,
    out: mpsc::Sender<ToParticipant>,
    negotiation: Mutex<Negotiation>,
    subscriptions: Mutex<Vec<Subscription>>,
    pub audio_muted: AtomicBool,
    pub video_muted: AtomicBool,
    /// Cancelled when the participant leaves or the session ends, so that whatever
    /// carries their signaling stops too.
    ended: tokio_util::sync::CancellationToken,
}

impl Member {
    /// Completes when the participant is no longer in the session.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }

    pub fn user(&self) -> &str {
        &self.info.user
    }

    pub fn peer_connection(&self) -> &Arc<dyn PeerConnection> {
        &self.pc
    }

    /// Sends to the participant; a participant that has gone away is ignored.
    pub async fn send(&self, message: ToParticipant) {
        let _ = self.out.send(message).await;
    }

    /// Packets and bytes forwarded to this participant, per publisher track.
    pub async fn forwarded(&self) -> Vec<(String, String, u64, u64)> {
        self.subscriptions
            .lock()
            .await
            .iter()
            .map(|s| {
                (
                    s.publisher.clone(),
                    s.track_id.clone(),
                    s.packets_out.load(Ordering::Relaxed),
                    s.bytes_out.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[derive(Default)]
struct RoomState {
    members: HashMap<String, Arc<Member>>,
    published: Vec<Arc<Published>>,
}

pub struct Room {
    pub consultation: ConsultationId,
    pub session_id: String,
    /// Bumped by every join and leave, so that a timer started when the room emptied
    /// can tell whether anyone came and went since.
    presence: AtomicU64,
    media: MediaSettings,
    runtime: Arc<dyn Runtime>,
    state: Mutex<RoomState>,
    notes: mpsc::UnboundedSender<(ConsultationId, RoomNote)>,
}

struct MemberEvents {
    room: std::sync::Weak<Room>,
    user: String,
    out: mpsc::Sender<ToParticipant>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for MemberEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self
                .out
                .send(ToParticipant::Candidate(candidate_from(init)))
                .await;
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if let Some(room) = self.room.upgrade() {
            let note = RoomNote::IceState {
                user: self.user.clone(),
                state: state.to_string(),
            };
            let _ = room.notes.send((room.consultation.clone(), note));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // webrtc-rs awaits this handler inside the connection's event loop: publishing
        // may wait for the track's first packet (to learn its codec), which that same
        // loop delivers, so it runs beside the loop rather than in it.
        if let Some(room) = self.room.upgrade() {
            let user = self.user.clone();
            tokio::spawn(async move { room.publish(&user, track).await });
        }
    }
}

fn candidate_from(init: RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_mline_index: init.sdp_mline_index,
        username_fragment: init.username_fragment,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("media: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("{0}")]
    Signaling(String),
}

impl Room {
    pub fn new(
        consultation: ConsultationId,
        session_id: String,
        media: MediaSettings,
        runtime: Arc<dyn Runtime>,
        notes: mpsc::UnboundedSender<(ConsultationId, RoomNote)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            consultation,
            session_id,
            presence: AtomicU64::new(0),
            media,
            runtime,
            state: Mutex::new(RoomState::default()),
            notes,
        })
    }

    pub fn presence_epoch(&self) -> u64 {
        self.presence.load(Ordering::SeqCst)
    }

    pub async fn members(&self) -> Vec<Arc<Member>> {
        self.state.lock().await.members.values().cloned().collect()
    }

    pub async fn published(&self) -> Vec<Arc<Published>> {
        self.state.lock().await.published.clone()
    }

    /// Adds a participant: a peer connection that receives their microphone and camera
    /// and sends them every other participant's tracks, and the first offer.
    pub async fn join(
        self: &Arc<Self>,
        info: ParticipantInfo,
        out: mpsc::Sender<ToParticipant>,
    ) -> Result<Arc<Member>, RoomError> {
        let events = Arc::new(MemberEvents {
            room: Arc::downgrade(self),
            user: info.user.clone(),
            out: out.clone(),
        });
        let pc = media::peer_connection(&self.media, self.runtime.clone(), events).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let receive_only = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            };
            pc.add_transceiver_from_kind(kind, Some(receive_only))
                .await?;
        }
        let member = Arc::new(Member {
            info: info.clone(),
            pc,
            out,
            negotiation: Mutex::new(Negotiation::default()),
            subscriptions: Mutex::new(Vec::new()),
            audio_muted: AtomicBool::new(false),
            video_muted: AtomicBool::new(false),
            ended: tokio_util::sync::CancellationToken::new(),
        });
        let (others, published) = {
            let mut state = self.state.lock().await;
            let others: Vec<_> = state.members.values().cloned().collect();
            state.members.insert(info.user.clone(), member.clone());
            self.presence.fetch_add(1, Ordering::SeqCst);
            (others, state.published.clone())
        };
        member
            .send(ToParticipant::Joined {
                session_id: self.session_id.clone(),
                participants: others.iter().map(|m| m.info.clone()).collect(),
            })
            .await;
        for other in &others {
            other
                .send(ToParticipant::ParticipantJoined(info.clone()))
                .await;
        }
        for track in published.iter().filter(|t| t.publisher != info.user) {
            self.subscribe(&member, track).await?;
            member
                .send(ToParticipant::TrackPublished(track.info()))
                .await;
        }
        self.negotiate(&member).await?;
        Ok(member)
    }

    /// Sends a new offer, or remembers to once the pending one is answered.
    async fn negotiate(&self, member: &Arc<Member>) -> Result<(), RoomError> {
        let mut negotiation = member.negotiation.lock().await;
        if negotiation.awaiting_answer {
            negotiation.again = true;
            return Ok(());
        }
        let options = std::mem::take(&mut negotiation.restart_ice)
            .then_some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true });
        let offer = member.pc.create_offer(options).await?;
        member.pc.set_local_description(offer.clone()).await?;
        negotiation.awaiting_answer = true;
        drop(negotiation);
        // The candidates in the offer as clients must use them (shared ICE-TCP port,
        // public addresses), not as the media stack bound them.
        let sdp = media::Advertisement::new(&self.media).sdp(&offer.sdp);
        member.send(ToParticipant::Offer(sdp)).await;
        Ok(())
    }

    pub async fn answer(&self, member: &Arc<Member>, sdp: String) -> Result<(), RoomError> {
        {
            let negotiation = member.negotiation.lock().await;
            if !negotiation.awaiting_answer {
                return Err(RoomError::Signaling(
                    "description: no offer is waiting for an answer".into(),
                ));
            }
        }
        let answer = RTCSessionDescription::answer(sdp)?;
        member.pc.set_remote_description(answer).await?;
        let again = {
            let mut negotiation = member.negotiation.lock().await;
            negotiation.awaiting_answer = false;
            std::mem::take(&mut negotiation.again)
        };
        if again {
            self.negotiate(member).await?;
        }
        Ok(())
    }

    pub async fn candidate(
        &self,
        member: &Arc<Member>,
        candidate: IceCandidate,
    ) -> Result<(), RoomError> {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
            ..Default::default()
        };
        member.pc.add_ice_candidate(init).await?;
        Ok(())
    }

    /// A new offer with fresh ICE credentials, after the participant's network changed.
    pub async fn restart_ice(&self, member: &Arc<Member>) -> Result<(), RoomError> {
        member.negotiation.lock().await.restart_ice = true;
        self.negotiate(member).await
    }

    pub async fn mute(&self, member: &Arc<Member>, audio_muted: bool, video_muted: bool) {
        member.audio_muted.store(audio_muted, Ordering::Relaxed);
        member.video_muted.store(video_muted, Ordering::Relaxed);
        for other in self.members().await {
            if other.user() != member.user() {
                other
                    .send(ToParticipant::Mute {
                        user: member.user().to_owned(),
                        audio_muted,
                        video_muted,
                    })
                    .await;
            }
        }
    }

    /// A participant's track arrived: forward it to everyone else.
    async fn publish(self: &Arc<Self>, publisher: &str, track: Arc<dyn TrackRemote>) {
        let pc = self
            .state
            .lock()
            .await
            .members
            .get(publisher)
            .map(|member| member.pc.clone());
        let Some(pc) = pc else {
            return;
        };
        let Some((ssrc, codec)) = identify(&pc, &track).await else {
            tracing::warn!(publisher, "track without a codec; not forwarded");
            return;
        };
        let published = Arc::new(Published {
            publisher: publisher.to_owned(),
            track_id: track.track_id().await,
            kind: track.kind().await,
            codec,
            remote: track,
            media_ssrc: ssrc,
            subscribers: std::sync::Mutex::new(Vec::new()),
            counters: TrackCounters::default(),
            last_keyframe_request: std::sync::Mutex::new(None),
        });
        tracing::info!(
            consultation_id = %self.consultation,
            publisher,
            kind = kind_name(published.kind),
            codec = %published.codec.mime_type,
            "track published"
        );
        let subscribers: Vec<_> = {
            let mut state = self.state.lock().await;
            state.published.push(published.clone());
            state
                .members
                .values()
                .filter(|m| m.user() != publisher)
                .cloned()
                .collect()
        };
        tokio::spawn(forward(published.clone()));
        for member in subscribers {
            if let Err(error) = self.subscribe(&member, &published).await {
                tracing::warn!(%error, subscriber = member.user(), "could not forward a track");
                continue;
            }
            member
                .send(ToParticipant::TrackPublished(published.info()))
                .await;
            if let Err(error) = self.negotiate(&member).await {
                tracing::warn!(%error, subscriber = member.user(), "renegotiation failed");
            }
        }
    }

    /// Adds a send-only transceiver for `published` to `member` and starts feeding it.
    async fn subscribe(
        &self,
        member: &Arc<Member>,
        published: &Arc<Published>,
    ) -> Result<(), RoomError> {
        let ssrc = random_ssrc();
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            published.publisher.clone(),
            format!("{}-{}", published.publisher, published.track_id),
            format!("{} {}", published.publisher, kind_name(published.kind)),
            published.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: published.codec.clone(),
                ..Default::default()
            }],
        )));
        // A transceiver of its own: each forwarded track is its own m-line, which every
        // WebRTC stack renders as a new remote track.
        let send_only = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            ..Default::default()
        };
        let transceiver = member
            .pc
            .add_transceiver_from_track(local.clone() as Arc<dyn TrackLocal>, Some(send_only))
            .await?;
        let sender = transceiver.sender().await?.ok_or_else(|| {
            RoomError::Signaling("a send-only transceiver without a sender".into())
        })?;
        let (queue, packets) = mpsc::channel::<rtp::Packet>(512);
        published
            .subscribers
            .lock()
            .expect("subscribers lock")
            .push((member.user().to_owned(), queue));
        let packets_out = Arc::new(AtomicU64::new(0));
        let bytes_out = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write_to_subscriber(
            local.clone(),
            sender.clone(),
            transceiver,
            published.clone(),
            ssrc,
            packets,
            packets_out.clone(),
            bytes_out.clone(),
        ));
        let feedback = tokio::spawn(pass_keyframe_requests(local, published.clone()));
        member.subscriptions.lock().await.push(Subscription {
            publisher: published.publisher.clone(),
            track_id: published.track_id.clone(),
            sender,
            tasks: vec![writer, feedback],
            packets_out,
            bytes_out,
        });
        // A new subscriber needs a keyframe to start decoding.
        published.request_keyframe().await;
        Ok(())
    }

    /// Removes a participant: their connection closes, their tracks stop being
    /// forwarded, and everyone else renegotiates.
    pub async fn leave(&self, user: &str) -> Option<Arc<Member>> {
        let (member, gone_tracks, others) = {
            let mut state = self.state.lock().await;
            let member = state.members.remove(user)?;
            self.presence.fetch_add(1, Ordering::SeqCst);
            let (gone, kept): (Vec<_>, Vec<_>) =
                state.published.drain(..).partition(|t| t.publisher == user);
            state.published = kept;
            for track in &state.published {
                track
                    .subscribers
                    .lock()
                    .expect("subscribers lock")
                    .retain(|(subscriber, _)| subscriber != user);
            }
            let others: Vec<_> = state.members.values().cloned().collect();
            (member, gone, others)
        };
        for subscription in member.subscriptions.lock().await.drain(..) {
            subscription.tasks.iter().for_each(JoinHandle::abort);
        }
        let _ = member.pc.close().await;
        member.ended.cancel();
        for other in &others {
            other
                .send(ToParticipant::ParticipantLeft(member.info.clone()))
                .await;
            let mut removed = false;
            {
                let mut subscriptions = other.subscriptions.lock().await;
                let (gone, kept): (Vec<_>, Vec<_>) =
                    subscriptions.drain(..).partition(|s| s.publisher == user);
                *subscriptions = kept;
                for subscription in gone {
                    subscription.tasks.iter().for_each(JoinHandle::abort);
                    let _ = other.pc.remove_track(&subscription.sender).await;
                    removed = true;
                }
            }
            for track in &gone_tracks {
                other
                    .send(ToParticipant::TrackUnpublished(track.info()))
                    .await;
            }
            if removed && let Err(error) = self.negotiate(other).await {
                tracing::warn!(%error, subscriber = other.user(), "renegotiation failed");
            }
        }
        Some(member)
    }

    /// Closes every connection, telling each participant why.
    pub async fn close(&self, reason: &str) -> Vec<Arc<Member>> {
        let members: Vec<_> = self
            .state
            .lock()
            .await
            .members
            .drain()
            .map(|(_, m)| m)
            .collect();
        for member in &members {
            member.send(ToParticipant::Ended(reason.to_owned())).await;
            for subscription in member.subscriptions.lock().await.drain(..) {
                subscription.tasks.iter().for_each(JoinHandle::abort);
            }
            let _ = member.pc.close().await;
            member.ended.cancel();
        }
        self.state.lock().await.published.clear();
        members
    }
}

/// How long a track may take to deliver its first packet when its codec is not known
/// when it is announced (on a slow link media can start seconds after the track).
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(30);

/// The SSRC and codec of a newly announced track.
///
/// webrtc-rs learns them from the track's first packet, but when the publisher's
/// connection renegotiates at that moment (as it does whenever someone else publishes)
/// the track can be announced without them and is never told later. They are then read
/// from the first packet that arrives (for at most [`FIRST_PACKET_WAIT`]): its SSRC,
/// and the codec its payload type was negotiated for on this connection.
async fn identify(
    pc: &Arc<dyn PeerConnection>,
    track: &Arc<dyn TrackRemote>,
) -> Option<(u32, RTCRtpCodec)> {
    for ssrc in track.ssrcs().await {
        if let Some(codec) = track.codec(ssrc).await {
            return Some((ssrc, codec));
        }
    }
    let kind = track.kind().await;
    let wait = async {
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                continue;
            };
            let ssrc = packet.header.ssrc;
            let codec = match track.codec(ssrc).await {
                Some(codec) => Some(codec),
                None => {
                    let payload_type = packet.header.payload_type;
                    tracing::debug!(ssrc, payload_type, "track announced without its codec");
                    received_codec(pc, kind, payload_type).await
                }
            };
            if let Some(codec) = codec {
                return Some((ssrc, codec));
            }
        }
        None
    };
    tokio::time::timeout(FIRST_PACKET_WAIT, wait)
        .await
        .ok()
        .flatten()
}

/// The codec of `kind` that `payload_type` stands for in what `pc` negotiated to
/// receive (a BUNDLE group maps a payload type to one codec across its sections).
async fn received_codec(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    payload_type: u8,
) -> Option<RTCRtpCodec> {
    let prefix = format!("{}/", kind_name(kind));
    for transceiver in pc.get_transceivers().await {
        let Ok(Some(receiver)) = transceiver.receiver().await else {
            continue;
        };
        let Ok(parameters) = receiver.get_parameters().await else {
            continue;
        };
        let found = parameters.rtp_parameters.codecs.into_iter().find(|codec| {
            codec.payload_type == payload_type
                && codec
                    .rtp_codec
                    .mime_type
                    .to_ascii_lowercase()
                    .starts_with(&prefix)
        });
        if let Some(codec) = found {
            return Some(codec.rtp_codec);
        }
    }
    None
}

/// Reads a published track and hands each packet to every subscriber's queue. A full
/// queue (a subscriber that cannot keep up) loses the packet rather than stalling the
/// others; the loss is counted.
async fn forward(published: Arc<Published>) {
    while let Some(event) = published.remote.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        published
            .counters
            .packets_in
            .fetch_add(1, Ordering::Relaxed);
        published
            .counters
            .bytes_in
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let subscribers = published
            .subscribers
            .lock()
            .expect("subscribers lock")
            .clone();
        for (_, queue) in subscribers {
            if queue.try_send(packet.clone()).is_err() {
                published.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How often a forwarding task asks whether the subscriber still accepts the track.
const DIRECTION_CHECK: Duration = Duration::from_millis(250);

/// Rewrites each packet for the subscriber's leg (its SSRC and negotiated payload
/// type; the publisher's header extensions are not negotiated on it) and sends it.
/// Nothing is sent while the subscriber's answer refuses the track (`inactive`, e.g.
/// a browser on a weak link that switched to audio only): the media stack would send
/// it regardless, and the subscriber would only drop it.
#[allow(clippy::too_many_arguments)]
async fn write_to_subscriber(
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    transceiver: Arc<dyn RtpTransceiver>,
    published: Arc<Published>,
    ssrc: u32,
    mut packets: mpsc::Receiver<rtp::Packet>,
    packets_out: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
) {
    let mime_type = published.codec.mime_type.clone();
    let mut payload_type = None;
    let mut accepted = true;
    let mut checked: Option<Instant> = None;
    while let Some(mut packet) = packets.recv().await {
        if checked.is_none_or(|at| at.elapsed() >= DIRECTION_CHECK) {
            checked = Some(Instant::now());
            let now = transceiver
                .current_direction()
                .await
                .map(|direction| direction.has_send())
                .unwrap_or(true);
            if now && !accepted {
                // Taken back: its decoder starts from a keyframe.
                published.request_keyframe().await;
            }
            accepted = now;
        }
        if !accepted {
            continue;
        }
        if payload_type.is_none() {
            payload_type = negotiated_payload_type(&sender, &mime_type).await;
        }
        // Not negotiated yet: the subscriber has not answered the offer with this track.
        let Some(payload_type) = payload_type else {
            continue;
        };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        packet.header.extension = false;
        packet.header.extensions.clear();
        let bytes = packet.payload.len() as u64;
        if local.write_rtp(packet).await.is_ok() {
            packets_out.fetch_add(1, Ordering::Relaxed);
            bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// Passes a subscriber's keyframe requests for this track to its publisher.
async fn pass_keyframe_requests(local: Arc<TrackLocalStaticRTP>, published: Arc<Published>) {
    while let Some(event) = local.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets
            .iter()
            .any(|p| media::is_keyframe_request(p.as_ref()))
        {
            published.request_keyframe().await;
        }
    }
}

async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>, mime_type: &str) -> Option<u8> {
    let parameters = sender.get_parameters().await.ok()?;
    parameters
        .rtp_parameters
        .codecs
        .iter()
        .find(|codec| codec.rtp_codec.mime_type.eq_ignore_ascii_case(mime_type))
        .map(|codec| codec.payload_type)
}

fn random_ssrc() -> u32 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    u32::from_be_bytes(bytes) | 1
}
