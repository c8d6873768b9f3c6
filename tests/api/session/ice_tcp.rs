//! A clinic whose firewall drops UDP: its participant has no UDP socket at all and
//! reaches the SFU over ICE-TCP (an active connection to the broker's passive
//! candidate), while the doctor stays on UDP.

use rtc::peer_connection::transport::RTCIceTcpCandidateType;
use teleconsult::relay::synthetic::Transport;
use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};

use super::*;

/// A local ICE candidate, from the participant's statistics.
#[derive(Debug, Clone)]
struct Local {
    id: String,
    protocol: String,
    tcp_type: RTCIceTcpCandidateType,
}

/// The participant's selected ICE candidate (its local side), and every local
/// candidate it has.
async fn candidates(participant: &Participant) -> (Option<Local>, Vec<Local>) {
    let report = participant
        .pc
        .get_stats(std::time::Instant::now(), StatsSelector::None)
        .await;
    let locals: Vec<Local> = report
        .iter()
        .filter_map(|entry| match entry {
            RTCStatsReportEntry::LocalCandidate(local) => Some(Local {
                id: local.stats.id.to_string(),
                protocol: local.protocol.clone(),
                tcp_type: local.tcp_type,
            }),
            _ => None,
        })
        .collect();
    let selected_pair = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::Transport(transport) => report
            .get(&transport.selected_candidate_pair_id)
            .and_then(|pair| match pair {
                RTCStatsReportEntry::IceCandidatePair(pair) => {
                    Some(pair.local_candidate_id.to_string())
                }
                _ => None,
            }),
        _ => None,
    });
    // webrtc-rs 0.21 names a local candidate `candidate:…` in the pair and
    // `RTCLocalIceCandidate_candidate:…` in the candidate's own entry.
    let selected = selected_pair.and_then(|local_candidate_id| {
        locals
            .iter()
            .find(|local| {
                local.id == local_candidate_id
                    || local.id.ends_with(&format!("_{}", local_candidate_id))
            })
            .cloned()
    });
    (selected, locals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_without_udp_joins_through_ice_tcp() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(5), true).await;
    let id = consultation.id.to_string();

    let nurse = Participant::join(
        app.channel_as(NURSE),
        NURSE,
        &id,
        SyntheticMedia {
            transport: Transport::TcpOnly,
            ..SyntheticMedia::default()
        },
    )
    .await
    .unwrap();
    let doctor = join(&app, DOCTOR, &id).await;
    media_flows(&[&nurse, &doctor], &Counts::new()).await;

    // The nurse's connection is its active TCP candidate, and it has no UDP at all.
    let (selected, locals) = candidates(&nurse).await;
    let selected = selected.unwrap_or_else(|| panic!("no selected pair among {locals:#?}"));
    assert_eq!(
        (selected.protocol.as_str(), selected.tcp_type),
        ("tcp", RTCIceTcpCandidateType::Active),
        "{selected:#?}"
    );
    assert!(
        locals.iter().all(|local| local.protocol == "tcp"),
        "the firewalled participant has non-TCP candidates: {locals:#?}"
    );
    // The doctor's is UDP.
    let (selected, locals) = candidates(&doctor).await;
    let selected = selected.unwrap_or_else(|| panic!("no selected pair among {locals:#?}"));
    assert_eq!(selected.protocol, "udp", "{selected:#?}");

    // Once flowing, what one sends the other receives, both ways over the TCP leg
    // (on loopback, all but the packets still in flight).
    for (sender, receiver) in [(&doctor, &nurse), (&nurse, &doctor)] {
        let sent = || sender.sent_video.load(Ordering::Relaxed);
        let got = || receiver.received_from(&sender.user, "video");
        let (sent0, got0) = (sent(), got());
        assert!(eventually(PATIENCE, || got() > got0 + 50).await);
        let (sent1, got1) = (sent(), got());
        assert!(
            (got1 - got0) as f64 >= (sent1 - sent0) as f64 * 0.8,
            "{} got {} of the {} video packets {} sent",
            receiver.user,
            got1 - got0,
            sent1 - sent0,
            sender.user
        );
    }
}
