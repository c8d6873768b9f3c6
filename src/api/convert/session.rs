//! Signaling messages to the relay's terms and back.

use crate::domain::InvalidField;
use crate::proto::v1 as pb;
use crate::proto::v1::signal_request::Message as In;
use crate::proto::v1::signal_response::Message as Out;
use crate::relay::signal::{
    FromParticipant, IceCandidate, ParticipantInfo, ToParticipant, TrackInfo,
};

/// Limits what a participant can make the broker parse.
const MAX_SDP: usize = 64 * 1024;
const MAX_CANDIDATE: usize = 1024;

pub fn from_participant(request: pb::SignalRequest) -> Result<FromParticipant, InvalidField> {
    match request.message {
        Some(In::Description(description)) => {
            if description.r#type != "answer" {
                return Err(InvalidField::new(
                    "description.type",
                    "must be \"answer\": the broker makes every offer",
                ));
            }
            if description.sdp.is_empty() || description.sdp.len() > MAX_SDP {
                return Err(InvalidField::new(
                    "description.sdp",
                    "must be 1 byte to 64 KiB",
                ));
            }
            Ok(FromParticipant::Answer(description.sdp))
        }
        Some(In::Candidate(candidate)) => {
            if candidate.candidate.len() > MAX_CANDIDATE {
                return Err(InvalidField::new("candidate.candidate", "is too long"));
            }
            Ok(FromParticipant::Candidate(IceCandidate {
                candidate: candidate.candidate,
                sdp_mid: Some(candidate.sdp_mid).filter(|mid| !mid.is_empty()),
                sdp_mline_index: Some(u16::try_from(candidate.sdp_mline_index).map_err(|_| {
                    InvalidField::new("candidate.sdp_mline_index", "is out of range")
                })?),
                username_fragment: Some(candidate.username_fragment).filter(|u| !u.is_empty()),
            }))
        }
        Some(In::Mute(mute)) => Ok(FromParticipant::Mute {
            audio_muted: mute.audio_muted,
            video_muted: mute.video_muted,
        }),
        Some(In::RestartIce(true)) => Ok(FromParticipant::RestartIce),
        Some(In::Leave(true)) => Ok(FromParticipant::Leave),
        Some(In::Join(_)) => Err(InvalidField::new("join", "the session is already joined")),
        Some(In::RestartIce(false)) | Some(In::Leave(false)) | None => {
            Err(InvalidField::new("message", "must be set"))
        }
    }
}

fn participant(info: ParticipantInfo) -> pb::Participant {
    pb::Participant {
        user_id: info.user,
        role: info.role.as_str().to_owned(),
        display_name: info.display_name,
    }
}

fn track(info: TrackInfo) -> pb::TrackInfo {
    pb::TrackInfo {
        participant_user_id: info.publisher.clone(),
        track_id: format!("{}-{}", info.publisher, info.track_id),
        stream_id: info.publisher,
        kind: info.kind.to_owned(),
    }
}

pub fn to_participant(message: ToParticipant) -> pb::SignalResponse {
    let message = match message {
        ToParticipant::Joined {
            session_id,
            participants,
        } => Out::Joined(pb::Joined {
            session_id,
            participants: participants.into_iter().map(participant).collect(),
            channel: String::new(),
        }),
        ToParticipant::Offer(sdp) => Out::Description(pb::SessionDescription {
            r#type: "offer".to_owned(),
            sdp,
        }),
        ToParticipant::Candidate(candidate) => Out::Candidate(pb::IceCandidate {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid.unwrap_or_default(),
            sdp_mline_index: u32::from(candidate.sdp_mline_index.unwrap_or_default()),
            username_fragment: candidate.username_fragment.unwrap_or_default(),
        }),
        ToParticipant::ParticipantJoined(info) => Out::ParticipantJoined(participant(info)),
        ToParticipant::ParticipantLeft(info) => Out::ParticipantLeft(participant(info)),
        ToParticipant::TrackPublished(info) => Out::TrackPublished(track(info)),
        ToParticipant::TrackUnpublished(info) => Out::TrackUnpublished(track(info)),
        ToParticipant::Mute {
            user,
            audio_muted,
            video_muted,
        } => Out::Mute(pb::ParticipantMute {
            user_id: user,
            state: Some(pb::MuteState {
                audio_muted,
                video_muted,
            }),
        }),
        ToParticipant::Ended(reason) => Out::Ended(pb::SessionEnded {
            reason,
            replaced: false,
        }),
        ToParticipant::Replaced => Out::Ended(pb::SessionEnded {
            reason: "you joined this session again from another connection".to_owned(),
            replaced: true,
        }),
    };
    pb::SignalResponse {
        message: Some(message),
    }
}
