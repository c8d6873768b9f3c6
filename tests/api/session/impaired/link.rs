//! A plateau link, in-process: a webrtc-rs `Runtime` that hands everything to the
//! default tokio runtime but wraps the UDP sockets it makes, so that every datagram
//! waits half the round trip on its way out and the other half on its way in, and a
//! seeded fraction is lost in each direction. netem would do this in the kernel; this
//! machine has no `sch_netem`.
//!
//! Only the clinic's peer connection runs on it, so the path clinic ⇄ broker gets the
//! whole added round trip (`rtt`) and the broker ⇄ doctor path stays on plain loopback.
//! The link carries UDP only: `connect_tcp` is refused, so ICE cannot slip around the
//! impairment over ICE-TCP. It can also move: [`ImpairedRuntime::move_address`] puts
//! new sockets on the wire, as a carrier's NAT does when a modem reconnects.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

/// What the link does to each datagram.
#[derive(Debug, Clone, Copy)]
pub struct LinkProfile {
    /// The round trip the link adds: half on the way out, half on the way in.
    pub rtt: Duration,
    /// Extra delay per datagram, uniform in `0..=jitter`. Datagrams stay in order, as on
    /// a single radio path: a delayed one holds back those behind it.
    pub jitter: Duration,
    /// Fraction of datagrams lost, independently in each direction.
    pub loss: f64,
    /// Seeds the loss and jitter draws, so a run's draws are the same every time.
    pub seed: u64,
}

/// Datagrams that crossed the link, as seen from the clinic.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub sent: AtomicU64,
    pub lost_outbound: AtomicU64,
    pub received: AtomicU64,
    pub lost_inbound: AtomicU64,
}

impl std::fmt::Display for LinkCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        write!(
            f,
            "out {} ({} lost), in {} ({} lost)",
            load(&self.sent),
            load(&self.lost_outbound),
            load(&self.received),
            load(&self.lost_inbound)
        )
    }
}

#[derive(Debug)]
pub struct ImpairedRuntime {
    inner: Arc<dyn Runtime>,
    profile: LinkProfile,
    sockets: AtomicU64,
    made: Mutex<Vec<Weak<ImpairedSocket>>>,
    pub counters: Arc<LinkCounters>,
}

impl ImpairedRuntime {
    pub fn new(profile: LinkProfile) -> Self {
        Self {
            inner: webrtc::runtime::default_runtime().expect("webrtc-rs is built with tokio"),
            profile,
            sockets: AtomicU64::new(0),
            made: Mutex::new(Vec::new()),
            counters: Arc::default(),
        }
    }

    /// The clinic's address changes under its feet (a modem reconnects and the
    /// carrier's NAT hands out a new port): from now on each socket's datagrams leave
    /// from, and are only received at, a new port, while the connection still believes
    /// in its old address. What is sent to the old one is lost.
    pub fn move_address(&self) -> io::Result<()> {
        let made = self.made.lock().expect("sockets lock");
        for socket in made.iter().filter_map(Weak::upgrade) {
            socket.move_address(&self.inner)?;
        }
        Ok(())
    }
}

impl Runtime for ImpairedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.inner.wrap_udp_socket(socket)?;
        // Each socket and direction draws from its own stream, so adding a socket (mDNS,
        // a rebind) does not shift the draws of the others.
        let socket = self.sockets.fetch_add(1, Ordering::Relaxed);
        let seed = self.profile.seed ^ socket.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let socket = Arc::new(ImpairedSocket::new(
            inner,
            self.profile,
            seed,
            self.counters.clone(),
        )?);
        self.made
            .lock()
            .expect("sockets lock")
            .push(Arc::downgrade(&socket));
        Ok(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        _remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async {
            Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the impaired link carries UDP only",
            ))
        })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "impaired"
    }
}

/// SplitMix64: small, seedable and good enough to decide which datagrams are lost.
#[derive(Debug)]
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction of the link: when a datagram entering it now comes out, if at all.
#[derive(Debug)]
struct Direction {
    draws: Draws,
    delay: Duration,
    jitter: Duration,
    loss: f64,
    last: Option<Instant>,
}

impl Direction {
    fn new(profile: LinkProfile, seed: u64) -> Self {
        Self {
            draws: Draws(seed),
            delay: profile.rtt / 2,
            jitter: profile.jitter,
            loss: profile.loss,
            last: None,
        }
    }

    fn exit_time(&mut self, now: Instant) -> Option<Instant> {
        if self.draws.unit() < self.loss {
            return None;
        }
        let jitter = self.jitter.mul_f64(self.draws.unit());
        let at = (now + self.delay + jitter).max(self.last.unwrap_or(now));
        self.last = Some(at);
        Some(at)
    }
}

#[derive(Debug)]
struct Datagram {
    at: Instant,
    peer: SocketAddr,
    bytes: Bytes,
}

/// A UDP socket behind the link. Sends are accepted at once and put on the wire by a
/// task when their time comes; a second task takes everything off the wire as it
/// arrives and a third hands it to the connection when its time comes. The socket on
/// the wire is the one the connection bound until the address moves.
#[derive(Debug)]
struct ImpairedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    on_wire: Arc<Mutex<Arc<dyn AsyncUdpSocket>>>,
    profile: LinkProfile,
    seed: u64,
    outbound: Mutex<Direction>,
    to_wire: mpsc::UnboundedSender<Datagram>,
    arrived: mpsc::UnboundedSender<Datagram>,
    from_wire: Mutex<mpsc::UnboundedReceiver<Datagram>>,
    counters: Arc<LinkCounters>,
    receive: Mutex<AbortHandle>,
    tasks: [AbortHandle; 2],
}

impl ImpairedSocket {
    fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        profile: LinkProfile,
        seed: u64,
        counters: Arc<LinkCounters>,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (to_wire, mut outgoing) = mpsc::unbounded_channel::<Datagram>();
        let (arrived, mut arriving) = mpsc::unbounded_channel::<Datagram>();
        let (deliver, from_wire) = mpsc::unbounded_channel::<Datagram>();
        let on_wire = Arc::new(Mutex::new(inner.clone()));

        let socket = on_wire.clone();
        let transmit = runtime.spawn(async move {
            while let Some(datagram) = outgoing.recv().await {
                tokio::time::sleep_until(datagram.at.into()).await;
                let socket = socket.lock().expect("link lock").clone();
                // A send error is a datagram lost on the wire; the protocols above recover.
                let _ = socket.send_to(&datagram.bytes, datagram.peer).await;
            }
        });

        let inbound = Direction::new(profile, seed.rotate_left(32) ^ 0x5555);
        let receive = receive_from(inner.clone(), inbound, counters.clone(), arrived.clone());

        let hand_over = runtime.spawn(async move {
            while let Some(datagram) = arriving.recv().await {
                tokio::time::sleep_until(datagram.at.into()).await;
                if deliver.send(datagram).is_err() {
                    return;
                }
            }
        });

        Ok(Self {
            inner,
            on_wire,
            profile,
            seed,
            outbound: Mutex::new(Direction::new(profile, seed)),
            to_wire,
            arrived,
            from_wire: Mutex::new(from_wire),
            counters,
            receive: Mutex::new(receive),
            tasks: [transmit.abort_handle(), hand_over.abort_handle()],
        })
    }

    /// Puts a new socket on the wire, on the same IP and a new port.
    fn move_address(&self, runtime: &Arc<dyn Runtime>) -> io::Result<()> {
        let ip = self.inner.local_addr()?.ip();
        let moved = runtime.wrap_udp_socket(std::net::UdpSocket::bind((ip, 0))?)?;
        *self.on_wire.lock().expect("link lock") = moved.clone();
        let inbound = Direction::new(self.profile, self.seed.rotate_left(16) ^ 0xaaaa);
        let receive = receive_from(moved, inbound, self.counters.clone(), self.arrived.clone());
        std::mem::replace(&mut *self.receive.lock().expect("link lock"), receive).abort();
        Ok(())
    }
}

/// Takes every datagram off `socket` as it arrives and sends it into the link.
fn receive_from(
    socket: Arc<dyn AsyncUdpSocket>,
    mut inbound: Direction,
    counters: Arc<LinkCounters>,
    arrived: mpsc::UnboundedSender<Datagram>,
) -> AbortHandle {
    tokio::spawn(async move {
        // Room for a GRO-coalesced read from the wrapped socket.
        let mut buf = vec![0u8; socket.max_gro_segments().max(1) * 1500];
        loop {
            let mut meta = [RecvMeta::default()];
            let read = std::future::poll_fn(|cx| {
                let mut bufs = [IoSliceMut::new(&mut buf)];
                socket.poll_recv(cx, &mut bufs, &mut meta)
            })
            .await;
            match read {
                Ok(_) => {}
                Err(error) if is_transient(&error) => continue,
                Err(_) => break,
            }
            let now = Instant::now();
            let [meta] = meta;
            for bytes in buf[..meta.len].chunks(meta.stride.max(1)) {
                counters.received.fetch_add(1, Ordering::Relaxed);
                let Some(at) = inbound.exit_time(now) else {
                    counters.lost_inbound.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let datagram = Datagram {
                    at,
                    peer: meta.addr,
                    bytes: Bytes::copy_from_slice(bytes),
                };
                if arrived.send(datagram).is_err() {
                    return;
                }
            }
        }
    })
    .abort_handle()
}

/// The errors the driver itself treats as transient on a receive.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

impl Drop for ImpairedSocket {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.receive.lock().expect("link lock").abort();
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    // GSO and GRO stay at their default of one segment: every datagram is drawn for
    // loss and delay on its own.

    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let now = Instant::now();
        let segment = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        let mut outbound = self.outbound.lock().expect("link lock");
        for bytes in transmit.contents.chunks(segment) {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let Some(at) = outbound.exit_time(now) else {
                self.counters.lost_outbound.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let datagram = Datagram {
                at,
                peer: transmit.destination,
                bytes: Bytes::copy_from_slice(bytes),
            };
            if self.to_wire.send(datagram).is_err() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
        }
        Poll::Ready(Ok(transmit.contents.len()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut from_wire = self.from_wire.lock().expect("link lock");
        let Some(datagram) = std::task::ready!(from_wire.poll_recv(cx)) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let len = datagram.bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram.bytes[..len]);
        *slot = RecvMeta::default();
        slot.addr = datagram.peer;
        slot.len = len;
        slot.stride = len.max(1);
        Poll::Ready(Ok(1))
    }
}
