//! The ceiling: a plain UDP forwarder on loopback. One tokio task per flow receives
//! each datagram and sends it on to that flow's receiver; there are as many flows as
//! the SFU had participants (it has a socket for each), so that both have as much
//! socket buffer to ride out a moment off the CPU. The forwarder runs on a runtime of
//! its own with two workers, as the broker does; a sender thread drives it with the
//! SFU's packet sizes at a set rate, paced every 100 µs, and receiver tasks count what
//! comes out. All of it shares this machine's cores, as the broker and its clients do.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::cpu;

/// What a participant sends every 40 ms, as datagrams on the wire (RTP header and SRTP
/// tag included): two 48 kbit/s Opus frames and one 1.5 Mbit/s VP8 frame in 7 packets.
const SIZES: [usize; 9] = [142, 142, 1093, 1093, 1093, 1093, 1093, 1093, 1093];
/// The forwarder's threads, whose CPU time is measured.
const FORWARDER: &str = "ceiling-relay";

#[derive(Debug, Clone, Copy)]
pub struct Trial {
    pub offered_pps: f64,
    pub forwarded_pps: f64,
    pub lost: u64,
    /// The forwarder threads' CPU time per forwarded packet.
    pub cpu_us_per_packet: f64,
}

fn runtime(name: &str, workers: usize) -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Receives on `socket` and counts, sending each datagram on to `to` if there is one.
async fn relay(socket: UdpSocket, to: Option<SocketAddr>, count: Arc<AtomicU64>) -> io::Result<()> {
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let mut buffer = [0u8; 2048];
    loop {
        let (length, _) = socket.recv_from(&mut buffer).await?;
        if let Some(to) = to {
            socket.send_to(&buffer[..length], to).await?;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends `rate` packets a second spread over `flows` for `duration`, waits for the
/// stragglers and counts what arrived.
pub fn trial(rate: f64, flows: usize, duration: Duration) -> io::Result<Trial> {
    let forwarder = runtime(FORWARDER, 2)?;
    let receiver = runtime("ceiling-receive", 1)?;
    let (forwarded, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut entrances = Vec::new();
    for _ in 0..flows {
        let [inbound, outbound] = [(); 2].map(|()| UdpSocket::bind("127.0.0.1:0"));
        let (inbound, outbound) = (inbound?, outbound?);
        outbound.set_nonblocking(true)?;
        inbound.set_nonblocking(true)?;
        let exit = outbound.local_addr()?;
        entrances.push(inbound.local_addr()?);
        receiver.spawn(relay(outbound, None, received.clone()));
        forwarder.spawn(relay(inbound, Some(exit), forwarded.clone()));
    }
    let cpu = cpu::threads_seconds(FORWARDER);
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let payload = [0x5au8; 1200];
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        for packet in sent..due {
            let (flow, size) = (
                packet as usize % flows,
                packet as usize / flows % SIZES.len(),
            );
            sender.send_to(&payload[..SIZES[size]], entrances[flow])?;
        }
        sent = sent.max(due);
        thread::sleep(Duration::from_micros(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(200));
    let cpu = cpu::threads_seconds(FORWARDER) - cpu;
    forwarder.shutdown_background();
    receiver.shutdown_background();
    let (forwarded, received) = (
        forwarded.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    Ok(Trial {
        offered_pps: sent as f64 / elapsed,
        forwarded_pps: received as f64 / elapsed,
        lost: sent.saturating_sub(received),
        cpu_us_per_packet: cpu * 1e6 / forwarded.max(1) as f64,
    })
}

/// The forwarder at `same_rate` (the SFU's), then from at least 5,000 packets a second
/// a quarter faster each time until it loses packets. Every trial, in order.
pub fn search(same_rate: f64, flows: usize, step: Duration) -> io::Result<Vec<Trial>> {
    let mut trials = vec![trial(same_rate, flows, step)?];
    let mut rate = same_rate.max(4_000.0);
    while trials.last().is_some_and(|t| t.lost == 0) && rate < 4_000_000.0 {
        rate *= 1.25;
        trials.push(trial(rate, flows, step)?);
    }
    Ok(trials)
}

/// Holds `rate` for a whole measured interval, stepping down by a tenth (at most three
/// times) while it loses packets.
pub fn confirm(rate: f64, flows: usize, duration: Duration) -> io::Result<Trial> {
    let mut attempt = trial(rate, flows, duration)?;
    for step in 1..=3 {
        if attempt.lost == 0 {
            break;
        }
        attempt = trial(rate * (1.0 - 0.1 * f64::from(step)), flows, duration)?;
    }
    Ok(attempt)
}
