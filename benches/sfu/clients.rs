//! The client process: every participant of every consultation as a real webrtc-rs
//! peer (`SyntheticParticipant`), in a process of its own so that the broker's CPU time
//! can be measured alone. It talks to the benchmark over its standard streams, a line
//! at a time: it prints `ready` once every participant receives its peer's audio and
//! video, counts from `start` to `stop`, prints its report as JSON and leaves.

use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use teleconsult::relay::synthetic::{SyntheticMedia, SyntheticParticipant, Transport, eventually};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};

use crate::broker::{Error, Result};

/// Who joins what, written by the benchmark for the client process: each consultation
/// with its nurse and its doctor, who join in that order.
#[derive(Serialize, Deserialize)]
pub struct Plan {
    pub address: String,
    pub ca_pem: String,
    pub pairs: Vec<(String, [Credential; 2])>,
}

#[derive(Serialize, Deserialize)]
pub struct Credential {
    pub user: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the participants sent and received between `start` and `stop`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientReport {
    pub sent: u64,
    pub received: u64,
    /// Packets the receivers count as lost from gaps in sequence numbers, as their
    /// receiver reports (every second) say.
    pub lost: i64,
    /// One-way latencies of the packets received, sender's clock to receiver's.
    pub latency_p50_us: u32,
    pub latency_p99_us: u32,
}

const MEDIA: SyntheticMedia = SyntheticMedia {
    audio_bps: 48_000,
    video_bps: 1_500_000,
    transport: Transport::Udp,
    measure_latency: true,
};

/// How many packets each participant has sent, received, and timed so far.
fn snapshot(participants: &[SyntheticParticipant]) -> Vec<(u64, u64, usize)> {
    participants
        .iter()
        .map(|p| {
            let sent = p.sent_audio.load(Ordering::Relaxed) + p.sent_video.load(Ordering::Relaxed);
            let received = p.received.lock().expect("received lock").values().sum();
            let timed = p.latencies_us.lock().expect("latency lock").len();
            (sent, received, timed)
        })
        .collect()
}

async fn lost(participants: &[SyntheticParticipant]) -> i64 {
    let mut lost = 0;
    for participant in participants {
        let stats = participant
            .pc
            .get_stats(Instant::now(), StatsSelector::None);
        for entry in stats.await.iter() {
            if let RTCStatsReportEntry::InboundRtp(inbound) = entry {
                lost += inbound.received_rtp_stream_stats.packets_lost;
            }
        }
    }
    lost
}

fn read_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

pub async fn run(plan: &std::path::Path) -> Result<()> {
    let plan: Plan = serde_json::from_slice(&std::fs::read(plan)?)?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&plan.ca_pem))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://{}", plan.address))?;
    let join = |who: &Credential, consultation: &str| {
        let identity = Identity::from_pem(&who.cert_pem, &who.key_pem);
        let channel = endpoint.clone().tls_config(tls.clone().identity(identity));
        let (user, consultation) = (who.user.clone(), consultation.to_owned());
        async move {
            let channel = channel?.connect_lazy();
            let joined = SyntheticParticipant::join(channel, &user, &consultation, MEDIA).await;
            Ok::<_, Error>(joined?)
        }
    };
    // Consultations join at once, but the nurse before the doctor: two first joins at
    // once race to move the consultation into session, and one is refused.
    let joins: Vec<_> = (plan.pairs.iter())
        .map(|(consultation, [nurse, doctor])| {
            let (nurse, doctor) = (join(nurse, consultation), join(doctor, consultation));
            tokio::spawn(async move { Ok::<_, Error>([nurse.await?, doctor.await?]) })
        })
        .collect();
    let (mut participants, mut peers) = (Vec::new(), Vec::new());
    for (join, (_, [nurse, doctor])) in joins.into_iter().zip(&plan.pairs) {
        participants.extend(join.await??);
        peers.extend([doctor.user.clone(), nurse.user.clone()]);
    }
    let limit = Duration::from_secs(20 + 2 * plan.pairs.len() as u64);
    let flowing = eventually(limit, || {
        participants.iter().zip(&peers).all(|(p, peer)| {
            p.received_from(peer, "audio") > 0 && p.received_from(peer, "video") > 0
        })
    })
    .await;
    if !flowing {
        return Err("media did not flow to every participant in time".into());
    }
    println!("ready");

    let start = tokio::task::spawn_blocking(read_line).await?;
    if start != "start" {
        return Err(format!("expected start, got {start:?}").into());
    }
    let (before, lost_before) = (snapshot(&participants), lost(&participants).await);
    tokio::task::spawn_blocking(read_line).await?;
    let after = snapshot(&participants);
    // The next receiver reports, which count the losses up to the end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut report = ClientReport {
        lost: lost(&participants).await - lost_before,
        ..ClientReport::default()
    };
    let mut latencies = Vec::new();
    for ((participant, before), after) in participants.iter().zip(&before).zip(&after) {
        report.sent += after.0 - before.0;
        report.received += after.1 - before.1;
        let timed = participant.latencies_us.lock().expect("latency lock");
        latencies.extend_from_slice(&timed[before.2..after.2]);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(at).copied().unwrap_or_default()
    };
    report.latency_p50_us = percentile(0.50);
    report.latency_p99_us = percentile(0.99);
    println!("{}", serde_json::to_string(&report)?);
    for participant in &participants {
        participant.leave().await;
    }
    Ok(())
}
