//! Quality summaries for the session log: per participant and track, packets and bytes
//! in and out, loss, jitter and round-trip time, from the peer connection's RTCP-fed
//! statistics.

use std::time::Instant;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Value, json};
use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};

use super::room::{Member, kind_name};

/// The statistics report jitter in RTP timestamp units (RFC 3550 §6.4.1); in seconds
/// that is divided by the codec's clock rate: 48 kHz for Opus, 90 kHz for video.
fn jitter_seconds(units: f64, kind: RtpCodecKind) -> f64 {
    let clock_rate = match kind {
        RtpCodecKind::Audio => 48_000.0,
        _ => 90_000.0,
    };
    units / clock_rate
}

/// A JSON summary of what `member`'s connection has carried so far.
pub async fn summary(member: &Member) -> Value {
    let report = member
        .peer_connection()
        .get_stats(Instant::now(), StatsSelector::None)
        .await;
    let mut received = Vec::new();
    let mut sent = Vec::new();
    let mut round_trips = Vec::new();
    for entry in report.iter() {
        match entry {
            RTCStatsReportEntry::InboundRtp(inbound) => {
                let stream = &inbound.received_rtp_stream_stats;
                received.push(json!({
                    "kind": kind_name(stream.rtp_stream_stats.kind),
                    "ssrc": stream.rtp_stream_stats.ssrc,
                    "packets": stream.packets_received,
                    "bytes": inbound.bytes_received,
                    "packets_lost": stream.packets_lost,
                    "jitter_s": jitter_seconds(stream.jitter, stream.rtp_stream_stats.kind),
                    "nack_count": inbound.nack_count,
                    "pli_count": inbound.pli_count,
                }));
            }
            RTCStatsReportEntry::OutboundRtp(outbound) => {
                let stream = &outbound.sent_rtp_stream_stats;
                sent.push(json!({
                    "kind": kind_name(stream.rtp_stream_stats.kind),
                    "ssrc": stream.rtp_stream_stats.ssrc,
                    "packets": stream.packets_sent,
                    "bytes": stream.bytes_sent,
                    "retransmitted_packets": outbound.retransmitted_packets_sent,
                }));
            }
            RTCStatsReportEntry::RemoteInboundRtp(remote) => {
                round_trips.push(json!({
                    "ssrc": remote.received_rtp_stream_stats.rtp_stream_stats.ssrc,
                    "round_trip_time_s": remote.round_trip_time,
                    "fraction_lost": remote.fraction_lost,
                    "packets_lost": remote.received_rtp_stream_stats.packets_lost,
                    "jitter_s": jitter_seconds(
                        remote.received_rtp_stream_stats.jitter,
                        remote.received_rtp_stream_stats.rtp_stream_stats.kind,
                    ),
                }));
            }
            _ => {}
        }
    }
    let forwarded: Vec<Value> = member
        .forwarded()
        .await
        .into_iter()
        .map(|(publisher, track, packets, bytes)| {
            json!({ "from": publisher, "track": track, "packets": packets, "bytes": bytes })
        })
        .collect();
    json!({
        "participant": member.user(),
        "role": member.info.role.as_str(),
        "received_from_participant": received,
        "sent_to_participant": sent,
        "as_seen_by_participant": round_trips,
        "forwarded_to_participant": forwarded,
    })
}
