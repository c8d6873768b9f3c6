//! ICE-TCP for every session on one shared port (e.g. 443), for clinics whose firewalls
//! drop UDP and let only a few TCP ports out.
//!
//! webrtc-rs 0.21 has no TCP mux: each peer connection binds its own listener. Here one
//! listener accepts every ICE-TCP connection, reads its first RFC 4571 frame (a two-byte
//! length, then a STUN Binding request), takes the broker's ufrag from the USERNAME
//! attribute (`<broker ufrag>:<client ufrag>`) and hands the connection, with the bytes
//! already read replayed first, to the peer connection with that ufrag. Peer connections
//! are reached through webrtc-rs's `Runtime`: [`IceTcpMux::runtime`] wraps the default
//! runtime so that the listener the driver asks for is fed by the mux.
//!
//! webrtc-rs names the TCP host candidate after the ephemeral listener its driver bound,
//! not after the mux; `media::Advertisement` puts the shared port in what clients are
//! told. A peer connection's ufrag is fixed when it is built, and webrtc-rs keeps fixed
//! credentials across an ICE restart: the broker's agent restarts and checks again over
//! the same routes, but the restart offer carries the old ufrag and password, so a
//! client sees a renegotiation, not a restart (RFC 8445 wants new ones).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
};

/// The longest first frame accepted. A Binding request with the longest USERNAME ICE
/// allows (two 256-character ufrags) and every attribute ICE adds is well under it.
pub const MAX_FIRST_FRAME: usize = 1024;
const STUN_HEADER: usize = 20;
const STUN_MAGIC_COOKIE: u32 = 0x2112_a442;
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_USERNAME: u16 = 0x0006;
/// How many connections one peer connection may have waiting to be accepted.
const ACCEPT_QUEUE: usize = 8;

/// Why a first frame is not the start of an ICE-TCP connection to the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirstFrameError {
    #[error("a first frame of {0} bytes cannot be a binding request")]
    Length(usize),
    #[error("not a STUN binding request")]
    NotBindingRequest,
    #[error("malformed STUN attributes")]
    Malformed,
    #[error("no USERNAME attribute")]
    NoUsername,
}

/// The broker's ufrag, from the first bytes of an ICE-TCP connection: one RFC 4571 frame
/// holding a STUN Binding request whose USERNAME is `<broker ufrag>:<client ufrag>`.
/// `Ok(None)`: the frame is not complete yet. A wrong length or header is an error as
/// soon as its bytes are in, so a client speaking something else is turned away early.
pub fn first_frame_ufrag(bytes: &[u8]) -> Result<Option<&str>, FirstFrameError> {
    let Some(&[high, low]) = bytes.get(..2) else {
        return Ok(None);
    };
    let length = usize::from(u16::from_be_bytes([high, low]));
    if !(STUN_HEADER..=MAX_FIRST_FRAME).contains(&length) {
        return Err(FirstFrameError::Length(length));
    }
    let message = &bytes[2..bytes.len().min(2 + length)];
    let Some(header) = message.get(..STUN_HEADER) else {
        return Ok(None);
    };
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let body = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if kind != STUN_BINDING_REQUEST
        || cookie != STUN_MAGIC_COOKIE
        || STUN_HEADER + body != length
        || body % 4 != 0
    {
        return Err(FirstFrameError::NotBindingRequest);
    }
    if message.len() < length {
        return Ok(None);
    }
    username_ufrag(&message[STUN_HEADER..]).map(Some)
}

/// The first half of the USERNAME attribute among STUN `attributes`.
fn username_ufrag(mut attributes: &[u8]) -> Result<&str, FirstFrameError> {
    while let [t0, t1, l0, l1, rest @ ..] = attributes {
        let kind = u16::from_be_bytes([*t0, *t1]);
        let length = usize::from(u16::from_be_bytes([*l0, *l1]));
        let value = rest.get(..length).ok_or(FirstFrameError::Malformed)?;
        if kind == STUN_USERNAME {
            let username = std::str::from_utf8(value).map_err(|_| FirstFrameError::Malformed)?;
            return match username.split_once(':') {
                Some((ours, _)) if !ours.is_empty() => Ok(ours),
                _ => Err(FirstFrameError::Malformed),
            };
        }
        // Attribute values are padded to four bytes.
        attributes = rest
            .get(length.next_multiple_of(4)..)
            .ok_or(FirstFrameError::Malformed)?;
    }
    if attributes.is_empty() {
        Err(FirstFrameError::NoUsername)
    } else {
        Err(FirstFrameError::Malformed)
    }
}

/// Limits on connections that have not yet said which session they are for.
#[derive(Debug, Clone, Copy)]
pub struct IceTcpLimits {
    /// Connections reading their first frame at once; more wait to be accepted.
    pub max_pending: usize,
    /// How long a connection may take to send its first frame before it is closed.
    pub first_frame_timeout: Duration,
}

impl Default for IceTcpLimits {
    fn default() -> Self {
        Self {
            max_pending: 256,
            first_frame_timeout: Duration::from_secs(10),
        }
    }
}

/// The shared ICE-TCP listener. Cheap to clone; [`IceTcpMux::stop`] closes it.
#[derive(Clone)]
pub struct IceTcpMux {
    shared: Arc<Shared>,
}

type Accepted = (Arc<dyn AsyncTcpStream>, SocketAddr);

struct Shared {
    local_addr: SocketAddr,
    /// Peer connections by their ufrag: one route per listener their driver bound.
    routes: Mutex<HashMap<String, Vec<Route>>>,
    next_route: AtomicU64,
    stop: CancellationToken,
}

struct Route {
    id: u64,
    /// The address of the listener webrtc-rs bound, which its TCP host candidate was
    /// gathered from; a stream must report it as its local address for ICE to match it.
    local_addr: SocketAddr,
    accepted: mpsc::Sender<Accepted>,
}

#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FirstFrameError),
    #[error("no session has this ufrag")]
    UnknownUfrag,
    #[error("the session is not accepting connections")]
    Busy,
}

impl IceTcpMux {
    /// Listens on `address` and serves until stopped. Must be called within a tokio
    /// runtime.
    pub fn bind(address: SocketAddr, limits: IceTcpLimits) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            local_addr: listener.local_addr()?,
            routes: Mutex::new(HashMap::new()),
            next_route: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        tracing::info!(address = %shared.local_addr, "ice-tcp: listening on the shared port");
        tokio::spawn(serve(listener, shared.clone(), limits));
        Ok(Self { shared })
    }

    /// The address the mux listens on (its port is what clients are told).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A runtime for the peer connection whose local ICE ufrag is `ufrag`: `inner` for
    /// everything but TCP, whose listeners are fed by the mux. The ufrag must be fixed
    /// for the connection's life (`SettingEngineBuilder::with_ice_credentials`).
    pub fn runtime(&self, ufrag: &str, inner: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
        Arc::new(SessionRuntime {
            inner,
            mux: self.clone(),
            ufrag: ufrag.to_owned(),
        })
    }

    /// Stops accepting; connections already handed to sessions stay theirs.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    fn register(&self, ufrag: &str, local_addr: SocketAddr) -> SessionListener {
        let (accepted, queue) = mpsc::channel(ACCEPT_QUEUE);
        let id = self.shared.next_route.fetch_add(1, Ordering::Relaxed);
        let route = Route {
            id,
            local_addr,
            accepted,
        };
        self.shared
            .routes
            .lock()
            .expect("routes lock")
            .entry(ufrag.to_owned())
            .or_default()
            .push(route);
        SessionListener {
            queue: tokio::sync::Mutex::new(queue),
            mux_addr: self.shared.local_addr,
            shared: Arc::downgrade(&self.shared),
            ufrag: ufrag.to_owned(),
            id,
        }
    }
}

impl std::fmt::Debug for IceTcpMux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceTcpMux")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl PartialEq for IceTcpMux {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for IceTcpMux {}

async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: IceTcpLimits) {
    let pending = Arc::new(Semaphore::new(limits.max_pending));
    loop {
        let permit = tokio::select! {
            () = shared.stop.cancelled() => return,
            permit = pending.clone().acquire_owned() => permit.expect("the semaphore stays open"),
        };
        let (stream, peer) = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: give the sessions a moment.
                    tracing::warn!(%error, "ice-tcp: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handed = tokio::select! {
                () = shared.stop.cancelled() => return,
                handed = tokio::time::timeout(limits.first_frame_timeout, hand_over(&shared, stream, peer)) => handed,
            };
            match handed {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    tracing::debug!(%peer, %reason, "ice-tcp: connection refused");
                }
                Err(_) => tracing::debug!(%peer, "ice-tcp: no first frame in time"),
            }
        });
    }
}

/// Reads the first frame and gives the connection to the session it names; a refused
/// connection is closed when its stream drops.
async fn hand_over(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> Result<(), Refusal> {
    let mut bytes = vec![0; 2 + MAX_FIRST_FRAME];
    let mut filled = 0;
    let ufrag = loop {
        if let Some(ufrag) = first_frame_ufrag(&bytes[..filled])? {
            break ufrag.to_owned();
        }
        stream.readable().await?;
        match stream.try_read(&mut bytes[filled..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
    };
    bytes.truncate(filled);
    let arrived_at = stream.local_addr()?;
    let routes = shared.routes.lock().expect("routes lock");
    let routes = routes.get(&ufrag).ok_or(Refusal::UnknownUfrag)?;
    // The listener bound on the address the client reached, when webrtc-rs bound one
    // per interface.
    let route = routes
        .iter()
        .find(|route| route.local_addr.ip() == arrived_at.ip())
        .or_else(|| routes.first())
        .ok_or(Refusal::UnknownUfrag)?;
    let stream = SessionStream {
        replay: Mutex::new(Bytes::from(bytes)),
        io: stream,
        local_addr: route.local_addr,
        peer_addr: peer,
    };
    route
        .accepted
        .try_send((Arc::new(stream), peer))
        .map_err(|_| Refusal::Busy)
}

/// The listener a peer connection's driver accepts from: connections the mux routed to
/// its ufrag. Dropping it (the connection closed, or rebound its transports) removes the
/// route.
#[derive(Debug)]
struct SessionListener {
    queue: tokio::sync::Mutex<mpsc::Receiver<Accepted>>,
    mux_addr: SocketAddr,
    shared: Weak<Shared>,
    ufrag: String,
    id: u64,
}

impl AsyncTcpListener for SessionListener {
    fn accept<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>> + Send + 'a>>
    {
        Box::pin(async move {
            match self.queue.lock().await.recv().await {
                Some(accepted) => Ok(accepted),
                // Only after the route is gone, i.e. never while the driver runs. An
                // error would make the driver accept again at once, and again.
                None => std::future::pending().await,
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.mux_addr)
    }
}

impl Drop for SessionListener {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut routes = shared.routes.lock().expect("routes lock");
        if let Some(list) = routes.get_mut(&self.ufrag) {
            list.retain(|route| route.id != self.id);
            if list.is_empty() {
                routes.remove(&self.ufrag);
            }
        }
    }
}

/// An accepted connection, the bytes the mux read replayed before the rest.
#[derive(Debug)]
struct SessionStream {
    replay: Mutex<Bytes>,
    io: TcpStream,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
}

impl AsyncTcpStream for SessionStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            {
                let mut replay = self.replay.lock().expect("replay lock");
                if !replay.is_empty() {
                    let n = replay.len().min(buf.len());
                    buf[..n].copy_from_slice(&replay.split_to(n));
                    return Ok(n);
                }
            }
            loop {
                self.io.readable().await?;
                match self.io.try_read(buf) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    read => return read,
                }
            }
        })
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut remaining = buf;
            while !remaining.is_empty() {
                self.io.writable().await?;
                match self.io.try_write(remaining) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => remaining = &remaining[n..],
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer_addr)
    }
}

/// One peer connection's runtime: the default one, except that TCP listeners come from
/// the mux and the broker does not dial out.
#[derive(Debug)]
struct SessionRuntime {
    inner: Arc<dyn Runtime>,
    mux: IceTcpMux,
    ufrag: String,
}

impl Runtime for SessionRuntime {
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
        self.inner.wrap_udp_socket(socket)
    }

    /// The driver has bound an ephemeral listener; its address names the TCP host
    /// candidate, but connections arrive through the mux, so the listener is closed.
    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        let local_addr = listener.local_addr()?;
        drop(listener);
        Ok(Arc::new(self.mux.register(&self.ufrag, local_addr)))
    }

    /// Clients reach the broker; the broker does not open connections to addresses a
    /// client names in its candidates (which would let it make the broker dial anywhere).
    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("ice-tcp on the shared port does not dial {remote_addr}"),
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
        self.inner.name()
    }
}
