//! What the broker and a participant say to each other during a session, independent
//! of the transport (the gRPC `Join` stream carries it).

use crate::domain::session::SessionRole;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
    pub username_fragment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub user: String,
    pub role: SessionRole,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The publishing participant; also the stream id (msid) of the forwarded track.
    pub publisher: String,
    pub track_id: String,
    /// `audio` or `video`.
    pub kind: &'static str,
}

/// From the broker to one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToParticipant {
    Joined {
        session_id: String,
        participants: Vec<ParticipantInfo>,
    },
    /// An offer to answer (the broker makes every offer).
    Offer(String),
    Candidate(IceCandidate),
    ParticipantJoined(ParticipantInfo),
    ParticipantLeft(ParticipantInfo),
    TrackPublished(TrackInfo),
    TrackUnpublished(TrackInfo),
    Mute {
        user: String,
        audio_muted: bool,
        video_muted: bool,
    },
    Ended(String),
    /// This connection was replaced by a newer one of the same user; the session goes
    /// on without it.
    Replaced,
}

impl ToParticipant {
    /// Whether nothing more follows on this connection.
    pub fn is_last(&self) -> bool {
        matches!(self, ToParticipant::Ended(_) | ToParticipant::Replaced)
    }
}

/// From one participant to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromParticipant {
    Answer(String),
    Candidate(IceCandidate),
    Mute {
        audio_muted: bool,
        video_muted: bool,
    },
    RestartIce,
    Leave,
}
