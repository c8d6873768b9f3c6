//! A syslog-over-TLS receiver for the tests, as an audit record repository would be:
//! it accepts TLS connections (optionally requiring a client certificate from the test
//! CA), reads RFC 5425 octet-counted frames, parses each RFC 5424 message strictly
//! and hands it to the test. It can be stopped, dropping every connection as a
//! crashed repository would, and restarted on the same port.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// One received RFC 5424 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub pri: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    /// The parameters of the `teleconsult@32473` structured-data element.
    pub seq: u64,
    pub hash: String,
    pub prev: String,
    pub body: serde_json::Value,
}

/// Parses `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`; panics on
/// anything else, which fails the test.
pub fn parse(message: &str) -> Message {
    let rest = message.strip_prefix('<').expect("PRI starts with <");
    let (pri, rest) = rest.split_once('>').expect("PRI ends with >");
    let rest = rest.strip_prefix("1 ").expect("VERSION 1");
    let mut fields = rest.splitn(6, ' ');
    let mut next = || fields.next().expect("a header field").to_owned();
    let (timestamp, hostname, app_name, procid, msgid, rest) =
        (next(), next(), next(), next(), next(), next());
    let rest = rest.strip_prefix("[teleconsult@32473").expect("our SD-ID");
    let end = rest.find(']').expect("the SD element ends");
    let mut params = std::collections::HashMap::new();
    for param in rest[..end].split_whitespace() {
        let (name, value) = param.split_once('=').expect("PARAM-NAME=VALUE");
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        params.insert(name.to_owned(), value.expect("a quoted value").to_owned());
    }
    let body = rest[end + 1..]
        .strip_prefix(" \u{feff}")
        .expect("MSG is UTF-8 with a BOM");
    Message {
        pri: pri.parse().expect("PRI is a number"),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        seq: params["seq"].parse().expect("seq is a number"),
        hash: params["hash"].clone(),
        prev: params["prev"].clone(),
        body: serde_json::from_str(body).expect("the body is JSON"),
    }
}

pub struct Receiver {
    address: SocketAddr,
    acceptor: TlsAcceptor,
    messages: mpsc::UnboundedSender<Message>,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port; messages arrive on the returned channel.
    pub async fn start(config: Arc<ServerConfig>) -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (messages, inbox) = mpsc::unbounded_channel();
        let mut receiver = Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            acceptor: TlsAcceptor::from(config),
            messages,
            task: None,
        };
        receiver.restart().await;
        (receiver, inbox)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes the port and drops every connection, unread data and all.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again, on the same port as before.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.address)
            .await
            .expect("binding the receiver");
        self.address = listener.local_addr().unwrap();
        let (acceptor, messages) = (self.acceptor.clone(), self.messages.clone());
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task when it is aborted, which aborts the connections.
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                connections.spawn(serve(acceptor.clone(), tcp, messages.clone()));
            }
        }));
    }
}

async fn serve(acceptor: TlsAcceptor, tcp: TcpStream, messages: mpsc::UnboundedSender<Message>) {
    let Ok(stream) = acceptor.accept(tcp).await else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = Vec::new();
        match reader.read_until(b' ', &mut length).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let length = std::str::from_utf8(length.strip_suffix(b" ").expect("MSG-LEN SP"))
            .expect("MSG-LEN is ASCII")
            .parse::<usize>()
            .expect("MSG-LEN is a number");
        let mut message = vec![0; length];
        if reader.read_exact(&mut message).await.is_err() {
            break;
        }
        let message = String::from_utf8(message).expect("the message is UTF-8");
        let _ = messages.send(parse(&message));
    }
    // As a repository does when the sender closes: close our side too.
    let _ = reader.into_inner().shutdown().await;
}
