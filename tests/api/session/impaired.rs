//! Relay point 3: a clinic on a thin plateau link (500–1,000 ms round trip, a few per
//! cent loss) still completes ICE and the DTLS handshake with the broker, and media
//! flows both ways.
//!
//! The clinic's peer connection runs on [`link::ImpairedRuntime`], which delays each of
//! its datagrams by half the round trip on the way out and half on the way in and loses
//! a seeded fraction in each direction; the doctor stays on plain loopback. Signaling
//! (gRPC) is not delayed, so the times below are the media path's alone: ICE checks and
//! nomination, then the DTLS flights. The broker offers `a=setup:actpass` and the
//! clinic, like a browser, answers `active`: the clinic is the DTLS client and the broker
//! the DTLS server.
//!
//! The same link can also move the clinic to a new address mid-consult, to see an ICE
//! restart bring it back.

mod link;
mod sweep;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use teleconsult::relay::synthetic::{
    SyntheticMedia, SyntheticParticipant as Participant, eventually,
};

use self::link::{ImpairedRuntime, LinkProfile};
use super::consultation;
use crate::helpers::TestApp;

const CLINIC: &str = "biru-nurse-dawa";
const DOCTOR: &str = "zju2-cardio-chen";

/// How long media is counted once it flows both ways.
const WINDOW: Duration = Duration::from_secs(4);

/// Packets of one kind sent one way during the counting window, and how many of them
/// arrived.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    sent: u64,
    received: u64,
}

impl Delivery {
    fn fraction(self) -> f64 {
        self.received as f64 / self.sent.max(1) as f64
    }
}

/// What one consult over an impaired link measured.
struct Measured {
    deliveries: [(&'static str, Delivery); 4],
}

impl Measured {
    fn assert_delivered(&self, at_least: f64) {
        for (flow, delivery) in self.deliveries {
            assert!(
                delivery.fraction() >= at_least,
                "{flow}: {} of {} packets delivered",
                delivery.received,
                delivery.sent
            );
        }
    }
}

/// The clinic joins `consultation` over `link`, the doctor over loopback.
async fn join(
    app: &TestApp,
    consultation: &str,
    link: &Arc<ImpairedRuntime>,
) -> (Participant, Participant) {
    let clinic = Participant::join_over(
        app.channel_as(CLINIC),
        CLINIC,
        consultation,
        SyntheticMedia::default(),
        link.clone(),
    )
    .await
    .expect("the clinic is admitted");
    let doctor = Participant::join(
        app.channel_as(DOCTOR),
        DOCTOR,
        consultation,
        SyntheticMedia::default(),
    )
    .await
    .expect("the doctor is admitted");
    (clinic, doctor)
}

/// The clinic joins over `profile`, the doctor over loopback; the clinic must reach
/// Connected within `connect_within`, then media is counted for [`WINDOW`].
async fn consult_over(profile: LinkProfile, connect_within: Duration) -> Measured {
    let app = TestApp::spawn().await;
    let id = consultation(&app, time::Duration::minutes(5), true)
        .await
        .id
        .to_string();
    let link = Arc::new(ImpairedRuntime::new(profile));

    let started = Instant::now();
    let (clinic, doctor) = join(&app, &id, &link).await;

    let connected = eventually(connect_within, || clinic.connected.load(Ordering::Relaxed)).await;
    let to_connected = started.elapsed();
    assert!(
        connected,
        "the clinic did not connect within {connect_within:?} over {profile:?}; link: {}",
        link.counters
    );

    let flowing = eventually(Duration::from_secs(10), || {
        [(&clinic, &doctor), (&doctor, &clinic)]
            .iter()
            .all(|(from, to)| {
                to.received_from(&from.user, "audio") > 0
                    && to.received_from(&from.user, "video") > 0
            })
    })
    .await;
    assert!(
        flowing,
        "media did not flow both ways over {profile:?}: clinic {:?}, doctor {:?}; link: {}",
        clinic.received, doctor.received, link.counters
    );

    // A packet sent at t reaches the other side by t + one way (half the round trip)
    // plus the relay; so what is sent in [t0, t0 + WINDOW] is compared with what is
    // received in [t0 + lag, t0 + WINDOW + lag].
    let flows = [
        ("clinic to doctor audio", &clinic, &doctor, "audio"),
        ("clinic to doctor video", &clinic, &doctor, "video"),
        ("doctor to clinic audio", &doctor, &clinic, "audio"),
        ("doctor to clinic video", &doctor, &clinic, "video"),
    ];
    let sent = || {
        flows.map(|(_, from, _, kind)| match kind {
            "audio" => from.sent_audio.load(Ordering::Relaxed),
            _ => from.sent_video.load(Ordering::Relaxed),
        })
    };
    let received = || flows.map(|(_, from, to, kind)| to.received_from(&from.user, kind));
    let lag = profile.rtt / 2 + profile.jitter + Duration::from_millis(300);
    let sent_before = sent();
    tokio::time::sleep(lag).await;
    let received_before = received();
    tokio::time::sleep(WINDOW - lag).await;
    let sent_after = sent();
    tokio::time::sleep(lag).await;
    let received_after = received();
    let deliveries = std::array::from_fn(|i| {
        let delivery = Delivery {
            sent: sent_after[i] - sent_before[i],
            received: received_after[i] - received_before[i],
        };
        (flows[i].0, delivery)
    });
    let measured = Measured { deliveries };
    eprintln!(
        "rtt {} ms, loss {} %: connected after {:.2} s; in {} s, {}; link {}",
        profile.rtt.as_millis(),
        profile.loss * 100.0,
        to_connected.as_secs_f64(),
        WINDOW.as_secs(),
        deliveries
            .iter()
            .map(|(flow, d)| format!("{flow} {}/{}", d.received, d.sent))
            .collect::<Vec<_>>()
            .join(", "),
        link.counters
    );
    clinic.leave().await;
    doctor.leave().await;
    measured
}

/// 1,000 ms round trip, 3 % loss each way. The clinic connects after about four and a
/// half round trips (measured 4.7 s): a check answered, the nomination, then the three
/// DTLS round trips (ClientHello, cookie, key exchange). A lost flight costs one more
/// second, webrtc-rs's fixed DTLS retransmission interval. 20 s leaves room for several
/// and stays under the clinic's 25 s ICE failure timeout, past which it gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_on_a_1000_ms_lossy_link_connects_and_exchanges_media() {
    let measured = consult_over(
        LinkProfile {
            rtt: Duration::from_millis(1000),
            jitter: Duration::ZERO,
            loss: 0.03,
            seed: 4500,
        },
        Duration::from_secs(20),
    )
    .await;
    // Audio loses its 3 % (no retransmission). Video to the clinic counts more than
    // was sent: the clinic's NACK generator asks again every 100 ms, so over a 1 s
    // round trip the broker resends a lost packet about ten times, and every copy counts.
    measured.assert_delivered(0.85);
}

/// 500 ms round trip, no loss: connected after about 4.8 round trips (measured 2.4 s);
/// 6 s leaves room for a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_on_a_500_ms_link_connects_quickly() {
    let measured = consult_over(
        LinkProfile {
            rtt: Duration::from_millis(500),
            jitter: Duration::ZERO,
            loss: 0.0,
            seed: 4500,
        },
        Duration::from_secs(6),
    )
    .await;
    measured.assert_delivered(0.95);
}

/// The clinic's address changes mid-consult (its 4G modem reconnects and the carrier's
/// NAT hands out a new port): what the broker sends to the old address is lost. The
/// clinic asks for an ICE restart, as the console's room does when its connection
/// drops; the broker offers new ICE credentials, and the same peer connection carries
/// media both ways again, without the clinic leaving the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_whose_address_changes_is_back_after_an_ice_restart() {
    use teleconsult::proto::v1::signal_request::Message as In;

    let app = TestApp::spawn().await;
    let id = consultation(&app, time::Duration::minutes(5), true)
        .await
        .id
        .to_string();
    let link = Arc::new(ImpairedRuntime::new(LinkProfile {
        rtt: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        seed: 4500,
    }));
    let (clinic, doctor) = join(&app, &id, &link).await;
    let both_ways = |since: [u64; 2]| {
        let now = [
            doctor.received_from(CLINIC, "video"),
            clinic.received_from(DOCTOR, "video"),
        ];
        now[0] > since[0] + 25 && now[1] > since[1] + 25
    };
    assert!(
        eventually(Duration::from_secs(20), || both_ways([0, 0])).await,
        "media did not flow both ways before the move"
    );
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    let before = ufrag(&clinic.pc.remote_description().await.unwrap().sdp);

    link.move_address().unwrap();
    // The broker's media now goes to an address nobody reads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = clinic.received_from(DOCTOR, "video");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lost_while_moved = clinic.received_from(DOCTOR, "video") - stalled;
    // (About 50 a second while the path is whole.)
    assert!(
        lost_while_moved < 10,
        "{lost_while_moved} video packets a second still reached the moved clinic: \
         the move did not cut the path, so the restart below proves nothing"
    );

    clinic.send(In::RestartIce(true)).await;
    let moved = [
        doctor.received_from(CLINIC, "video"),
        clinic.received_from(DOCTOR, "video"),
    ];
    assert!(
        eventually(Duration::from_secs(20), || both_ways(moved)).await,
        "media did not flow both ways again after the ICE restart: clinic {:?}, doctor {:?}",
        clinic.received,
        doctor.received
    );
    let after = ufrag(&clinic.pc.remote_description().await.unwrap().sdp);
    assert_ne!(
        before, after,
        "the broker did not offer new ICE credentials"
    );
    assert!(!clinic.ended.load(Ordering::Relaxed));
    let log = app.audit_records().await;
    let left = log
        .iter()
        .filter(|r| r.entry.action == "session.leave")
        .count();
    assert_eq!(left, 0, "somebody left the session");
    eprintln!(
        "video packets reaching the clinic in the second after its address moved: \
         {lost_while_moved}; ICE ufrag {before:?} → {after:?}"
    );
    clinic.leave().await;
    doctor.leave().await;
}
