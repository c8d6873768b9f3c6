//! Accepting TLS connections: every handshake runs in its own task, at most
//! `max_handshakes` at once and each for at most `handshake_timeout`, so a client that
//! connects and says nothing cannot stall the accept loop or exhaust the broker.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::auth::{CertificateIdentity, Channel, PeerInfo};

#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    pub timeout: Duration,
    pub max_concurrent: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_concurrent: 256,
        }
    }
}

/// An established TLS connection with what is known about its peer.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections on `listener` until `stop` is cancelled and yields those whose
/// handshake succeeded.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: HandshakeLimits,
    stop: CancellationToken,
    channel: Channel,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (established, incoming) = mpsc::channel(64);
    tokio::spawn(accept_loop(
        listener,
        config,
        limits,
        stop,
        channel,
        established,
    ));
    ReceiverStream::new(incoming)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: HandshakeLimits,
    stop: CancellationToken,
    channel: Channel,
    established: mpsc::Sender<io::Result<TlsConnection>>,
) {
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(limits.max_concurrent));
    loop {
        // Wait for a free handshake slot before accepting, so that excess clients
        // wait in the kernel's backlog rather than in our memory.
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = handshakes.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let (tcp, remote_addr) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically out of file descriptors; back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let established = established.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let handshake = tokio::select! {
                () = stop.cancelled() => return,
                result = tokio::time::timeout(limits.timeout, acceptor.accept(tcp)) => result,
            };
            drop(permit);
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::info!(%remote_addr, %error, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote_addr, "tls handshake timed out");
                    return;
                }
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| CertificateIdentity::from_der(der).ok())
                .map(Arc::new);
            let peer = PeerInfo {
                channel,
                remote_addr: Some(remote_addr),
                identity,
            };
            // The server has stopped taking connections when the receiver is gone.
            let _ = established.send(Ok(TlsConnection { stream, peer })).await;
        });
    }
}
