//! Forwarding the audit log to an audit record repository, as IHE ATNA (ITI-20)
//! expects: each record is an RFC 5424 syslog message, sent over TLS with RFC 5425's
//! octet-counting framing.
//!
//! The log is its own spool. A cursor in the store says up to which record the
//! repository is known to have everything; the forwarder sends what follows it, so
//! nothing is lost while the repository is unreachable, and a restart resends from the
//! cursor. RFC 5425 has no acknowledgements, so a batch counts as delivered only once
//! the connection has stayed healthy for `confirm_after` after it was written, or the
//! repository closed the connection in reply to ours (it has then read everything).
//! Delivery is at least once: every message carries its record's seq (and hash) in
//! its structured data, by which the repository can drop duplicates.

mod format;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::auth::tls::{self, TlsError};
use crate::store::SharedStore;

pub use format::{Origin, SD_ID, format_message, frame};

/// Where to forward to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    /// `host:port` of the repository (6514 is syslog over TLS's port).
    pub address: String,
    /// The name the repository's certificate must carry.
    pub server_name: String,
    /// The CA certificate(s), PEM, that issued the repository's certificate.
    pub ca: PathBuf,
    /// Our certificate and key (PEM), for a repository that authenticates senders.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// APP-NAME of every message.
    pub app_name: String,
    /// HOSTNAME of every message; the system's host name when `None`.
    pub hostname: Option<String>,
    pub timing: ForwarderTiming,
}

/// How the forwarder paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwarderTiming {
    /// How often it looks for new records when it has sent everything.
    pub poll_interval: Duration,
    /// How long a written batch must go without the connection failing to count as
    /// delivered.
    pub confirm_after: Duration,
    /// The wait after a failure, doubling up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Limit on connecting and on each write.
    pub io_timeout: Duration,
    /// On shutdown, how long it may take to send the rest and close.
    pub drain_timeout: Duration,
    /// Records per write.
    pub batch: u32,
}

impl Default for ForwarderTiming {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            confirm_after: Duration::from_secs(2),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            io_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(2),
            batch: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error(transparent)]
    Files(#[from] TlsError),
    #[error("syslog TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("syslog: {0}")]
    Invalid(String),
}

/// What the forwarder has done so far, for health reporting and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwarderStatus {
    pub connected: bool,
    /// The last record written to the current or last connection.
    pub sent_up_to: u64,
    /// The last record known delivered (the stored cursor).
    pub delivered_up_to: u64,
    /// Failed connections and connection attempts.
    pub failures: u64,
}

/// How a connection ended.
enum Ended {
    Stopped,
    Failed(io::Error),
}

type Connection = TlsStream<TcpStream>;

/// Sends the audit log to one repository until stopped.
pub struct SyslogForwarder {
    settings: SyslogSettings,
    store: SharedStore,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    origin: Origin,
    destination: String,
    status: watch::Sender<ForwarderStatus>,
}

impl SyslogForwarder {
    /// Loads the TLS material; the repository need not be reachable yet.
    pub fn new(settings: SyslogSettings, store: SharedStore) -> Result<Self, SyslogError> {
        let mut roots = RootCertStore::empty();
        for certificate in tls::load_certificates(&settings.ca)? {
            roots.add(certificate)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &settings.client_identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = tls::load_certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::File {
                    path: key.clone(),
                    problem: error.to_string(),
                })?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        let server_name = ServerName::try_from(settings.server_name.clone()).map_err(|_| {
            SyslogError::Invalid(format!("bad server name {:?}", settings.server_name))
        })?;
        let origin = Origin {
            hostname: settings
                .hostname
                .clone()
                .unwrap_or_else(format::system_hostname),
            app_name: settings.app_name.clone(),
            procid: std::process::id().to_string(),
        };
        Ok(Self {
            destination: format!("syslog:{}", settings.address),
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            origin,
            settings,
            store,
            status: watch::Sender::new(ForwarderStatus::default()),
        })
    }

    pub fn status(&self) -> watch::Receiver<ForwarderStatus> {
        self.status.subscribe()
    }

    /// Forwards until `stop`, then sends what it can within the drain timeout.
    pub async fn run(self, stop: CancellationToken) {
        let timing = self.settings.timing;
        let mut backoff = timing.retry_min;
        while !stop.is_cancelled() {
            let ended = match self.store.forwarded_up_to(&self.destination).await {
                Err(error) => Ended::Failed(io::Error::other(error)),
                Ok(delivered) => {
                    self.status.send_modify(|s| s.delivered_up_to = delivered);
                    let connecting = tokio::time::timeout(timing.io_timeout, self.connect());
                    let connected = tokio::select! {
                        () = stop.cancelled() => break,
                        connected = connecting => connected,
                    };
                    match connected {
                        Ok(Ok(connection)) => {
                            tracing::info!(address = %self.settings.address, from_seq = delivered + 1, "forwarding the audit log");
                            backoff = timing.retry_min;
                            self.status.send_modify(|s| s.connected = true);
                            self.session(connection, delivered, &stop).await
                        }
                        Ok(Err(error)) => Ended::Failed(error),
                        Err(_) => Ended::Failed(io::ErrorKind::TimedOut.into()),
                    }
                }
            };
            self.status.send_modify(|s| s.connected = false);
            match ended {
                Ended::Stopped => break,
                Ended::Failed(error) => {
                    self.status.send_modify(|s| s.failures += 1);
                    tracing::warn!(%error, address = %self.settings.address, retry_ms = backoff.as_millis() as u64, "audit forwarding interrupted; records stay spooled in the log");
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(timing.retry_max);
        }
    }

    async fn connect(&self) -> io::Result<Connection> {
        let tcp = TcpStream::connect(&self.settings.address).await?;
        tcp.set_nodelay(true)?;
        self.connector.connect(self.server_name.clone(), tcp).await
    }

    /// Sends records after `delivered` until the connection fails or `stop`.
    async fn session(
        &self,
        mut connection: Connection,
        delivered: u64,
        stop: &CancellationToken,
    ) -> Ended {
        let timing = self.settings.timing;
        let mut sent = delivered;
        let mut unconfirmed: VecDeque<(Instant, u64)> = VecDeque::new();
        loop {
            if let Err(error) = probe(&mut connection).await {
                return Ended::Failed(error);
            }
            let mut confirmed = None;
            while let Some(&(_, seq)) = unconfirmed
                .front()
                .filter(|(at, _)| at.elapsed() >= timing.confirm_after)
            {
                confirmed = Some(seq);
                unconfirmed.pop_front();
            }
            if let Some(seq) = confirmed {
                self.confirm(seq).await;
            }
            if stop.is_cancelled() {
                self.drain(connection, sent).await;
                return Ended::Stopped;
            }
            match self.send_batch(&mut connection, sent).await {
                Ok(Some(last)) => {
                    sent = last;
                    unconfirmed.push_back((Instant::now(), last));
                    self.status.send_modify(|s| s.sent_up_to = last);
                }
                Ok(None) => tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(timing.poll_interval) => {}
                },
                Err(error) => return Ended::Failed(error),
            }
        }
    }

    /// Writes the next batch after `after`; the seq of its last record, `None` if
    /// there was nothing to send.
    async fn send_batch(&self, connection: &mut Connection, after: u64) -> io::Result<Option<u64>> {
        let records = self
            .store
            .audit_records(after, self.settings.timing.batch)
            .await
            .map_err(io::Error::other)?;
        let Some(last) = records.last().map(|record| record.seq) else {
            return Ok(None);
        };
        let mut buffer = Vec::new();
        for record in &records {
            buffer.extend(frame(&format_message(record, &self.origin)));
        }
        let write = async {
            connection.write_all(&buffer).await?;
            connection.flush().await
        };
        tokio::time::timeout(self.settings.timing.io_timeout, write)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(Some(last))
    }

    async fn confirm(&self, seq: u64) {
        match self.store.set_forwarded_up_to(&self.destination, seq).await {
            Ok(()) => self.status.send_modify(|s| s.delivered_up_to = seq),
            Err(error) => tracing::warn!(%error, seq, "could not store the forwarding cursor"),
        }
    }

    /// On shutdown: sends the rest, closes our side and waits for the repository to
    /// close its side, which shows it read everything; all within the drain timeout.
    async fn drain(&self, mut connection: Connection, mut sent: u64) {
        let drained = tokio::time::timeout(self.settings.timing.drain_timeout, async {
            while let Some(last) = self.send_batch(&mut connection, sent).await? {
                sent = last;
            }
            connection.shutdown().await?;
            let mut scratch = [0u8; 512];
            loop {
                match connection.read(&mut scratch).await {
                    Ok(0) => return Ok::<_, io::Error>(()),
                    Ok(_) => continue,
                    // Closed without close_notify: still closed after reading ours.
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        match drained {
            Ok(Ok(())) => self.confirm(sent).await,
            Ok(Err(error)) => {
                tracing::warn!(%error, "audit repository connection failed while closing")
            }
            Err(_) => tracing::warn!(
                "audit repository did not close in time; unconfirmed records will be sent again"
            ),
        }
    }
}

/// Whether the connection is still up. The repository never sends anything, so a
/// readable connection means it was closed or broke.
async fn probe(connection: &mut Connection) -> io::Result<()> {
    let mut scratch = [0u8; 512];
    loop {
        // A zero timeout polls the read once: ready or not, without waiting.
        match tokio::time::timeout(Duration::ZERO, connection.read(&mut scratch)).await {
            Err(_) => return Ok(()),
            Ok(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the repository closed the connection",
                ));
            }
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => return Err(error),
        }
    }
}
