//! Clients as small as a browser's, over server-authenticated TLS to the console
//! port: raw HTTP/1.1 written by hand on tokio-rustls, and HTTP/2 through h2. Both
//! speak gRPC-Web (`application/grpc-web+proto`): 5-byte framed messages, then a
//! trailer frame (flag 0x80) carrying `grpc-status`, or, when the call fails before
//! any message, the status in the response headers ("trailers-only").

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tonic::codegen::http;
use tonic::{Code, Status};

use crate::helpers::TestApp;

/// Which HTTP a gRPC-Web call travels over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    One,
    Two,
}

/// A TLS connection to the console port that negotiated `alpn`.
async fn connect(app: &TestApp, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for certificate in teleconsult::auth::tls::load_certificates(&app.pki.ca_cert()).unwrap() {
        roots.add(certificate).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let address = app.console_address.expect("the app has a console port");
    let tcp = TcpStream::connect(address).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the console's TLS handshake succeeds without a client certificate");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(alpn),
        "the console port did not agree to {}",
        String::from_utf8_lossy(alpn)
    );
    stream
}

fn authority(app: &TestApp) -> String {
    format!("localhost:{}", app.console_address.unwrap().port())
}

/// The console port's own origin, as a page served from it sends on every POST.
pub fn same_origin(app: &TestApp) -> String {
    format!("https://{}", authority(app))
}

/// An HTTP response's status and headers (names lowercase).
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How an HTTP/1.1 body is delimited.
enum Framing {
    Length(usize),
    Chunked { done: bool },
    UntilClose,
}

/// An HTTP/1.1 response body, read as it arrives.
pub struct Http1Body {
    stream: TlsStream<TcpStream>,
    buffer: BytesMut,
    framing: Framing,
}

impl Http1Body {
    /// Reads more from the connection; false at its end.
    async fn fill(stream: &mut TlsStream<TcpStream>, buffer: &mut BytesMut) -> bool {
        let mut read = [0u8; 8192];
        match stream.read(&mut read).await {
            Ok(0) => false,
            Ok(n) => {
                buffer.extend_from_slice(&read[..n]);
                true
            }
            // A peer that closes without close_notify ends the body all the same.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(error) => panic!("reading the console's response: {error}"),
        }
    }

    /// The next piece of the body, `None` at its end.
    async fn chunk(&mut self) -> Option<Bytes> {
        match &mut self.framing {
            Framing::Length(0) => None,
            Framing::Length(remaining) => {
                if self.buffer.is_empty() && !Self::fill(&mut self.stream, &mut self.buffer).await {
                    panic!("the connection closed with {remaining} body bytes to come");
                }
                let n = (*remaining).min(self.buffer.len());
                *remaining -= n;
                Some(self.buffer.split_to(n).freeze())
            }
            Framing::UntilClose => {
                if self.buffer.is_empty() && !Self::fill(&mut self.stream, &mut self.buffer).await {
                    return None;
                }
                Some(self.buffer.split().freeze())
            }
            Framing::Chunked { done: true } => None,
            Framing::Chunked { done } => {
                let line = loop {
                    if let Some(end) = find(&self.buffer, b"\r\n") {
                        break self.buffer.split_to(end + 2);
                    }
                    assert!(
                        Self::fill(&mut self.stream, &mut self.buffer).await,
                        "the connection closed inside a chunk header"
                    );
                };
                let size = std::str::from_utf8(&line[..line.len() - 2]).unwrap();
                let size = size.split(';').next().unwrap().trim();
                let size = usize::from_str_radix(size, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
                // The chunk and its CRLF; the last chunk may carry HTTP trailers first.
                if size == 0 {
                    *done = true;
                    while find(&self.buffer, b"\r\n").is_none()
                        && Self::fill(&mut self.stream, &mut self.buffer).await
                    {
                    }
                    return None;
                }
                while self.buffer.len() < size + 2 {
                    assert!(
                        Self::fill(&mut self.stream, &mut self.buffer).await,
                        "the connection closed inside a chunk"
                    );
                }
                let data = self.buffer.split_to(size).freeze();
                self.buffer.advance(2);
                Some(data)
            }
        }
    }

    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await {
            body.extend_from_slice(&chunk);
        }
        body
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends one HTTP/1.1 request on a new connection and reads the response head.
pub async fn http1(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Head, Http1Body) {
    let mut stream = connect(app, b"http/1.1").await;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", authority(app));
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();

    let mut buffer = BytesMut::new();
    let end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        assert!(
            Http1Body::fill(&mut stream, &mut buffer).await,
            "the connection closed before a response head"
        );
    };
    let head = buffer.split_to(end + 4);
    let text = std::str::from_utf8(&head).expect("the response head is text");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "not an HTTP/1.1 response: {status_line:?}"
    );
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let head = Head { status, headers };
    let framing = if head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        Framing::Chunked { done: false }
    } else if let Some(length) = head.header("content-length") {
        Framing::Length(length.parse().unwrap())
    } else if method == "HEAD" || head.status == 204 || head.status == 304 {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    (
        head,
        Http1Body {
            stream,
            buffer,
            framing,
        },
    )
}

/// A GET over raw HTTP/1.1: the head and the whole body.
pub async fn get(app: &TestApp, path: &str) -> (Head, Vec<u8>) {
    let (head, mut body) = http1(app, "GET", path, &[], &[]).await;
    let body = body.read_to_end().await;
    (head, body)
}

/// A response body of either HTTP.
enum Body {
    One(Box<Http1Body>),
    Two(h2::RecvStream),
}

impl Body {
    async fn chunk(&mut self) -> Option<Bytes> {
        match self {
            Body::One(body) => body.chunk().await,
            Body::Two(body) => {
                let data = body.data().await?.expect("reading an HTTP/2 body");
                let _ = body.flow_control().release_capacity(data.len());
                Some(data)
            }
        }
    }
}

/// A gRPC-Web call to the console port.
pub struct WebCall<'a> {
    pub http: Http,
    /// `/package.Service/Method`.
    pub path: &'a str,
    /// The value of the session cookie, if any.
    pub cookie: Option<&'a str>,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
}

/// A gRPC-Web response whose messages are read as they arrive.
pub struct WebStream {
    pub head: Head,
    body: Body,
    buffer: BytesMut,
    /// The trailer frame's fields, once it has been read.
    pub trailers: Option<Vec<(String, String)>>,
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("-"), 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status that `fields` (headers or trailers) carry, if they carry one.
fn status_of(fields: &[(String, String)]) -> Option<Status> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let code: i32 = field("grpc-status")?
        .parse()
        .expect("a numeric grpc-status");
    let message = field("grpc-message")
        .map(percent_decode)
        .unwrap_or_default();
    Some(Status::new(Code::from_i32(code), message))
}

impl WebCall<'_> {
    /// Sends `request` and reads the response head. A failed call (HTTP error,
    /// trailers-only gRPC error) is `Err`; the response's head comes with it.
    pub async fn start(
        &self,
        app: &TestApp,
        request: &impl Message,
    ) -> Result<WebStream, (Head, Status)> {
        let message = request.encode_to_vec();
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let cookie = self
            .cookie
            .map(|value| format!("{}={value}", teleconsult::auth::web_session::COOKIE_NAME));
        let mut headers = vec![
            ("content-type", "application/grpc-web+proto"),
            ("accept", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ];
        if let Some(cookie) = &cookie {
            headers.push(("cookie", cookie));
        }
        if let Some(origin) = self.origin {
            headers.push(("origin", origin));
        }
        let (head, body) = match self.http {
            Http::One => {
                let (head, body) = http1(app, "POST", self.path, &headers, &framed).await;
                (head, Body::One(Box::new(body)))
            }
            Http::Two => {
                let (head, body) = h2_post(app, self.path, &headers, framed).await;
                (head, Body::Two(body))
            }
        };
        if head.status != 200 {
            let status = Status::new(Code::Unknown, format!("HTTP {}", head.status));
            return Err((head, status));
        }
        assert!(
            head.header("content-type")
                .is_some_and(|t| t.starts_with("application/grpc-web")),
            "a gRPC-Web answer has a gRPC-Web content type: {head:?}"
        );
        if let Some(status) = status_of(&head.headers) {
            // Trailers-only: the call failed (or succeeded with nothing) up front.
            if status.code() != Code::Ok {
                return Err((head, status));
            }
        }
        Ok(WebStream {
            head,
            body,
            buffer: BytesMut::new(),
            trailers: None,
        })
    }

    /// A unary call: the one message and the response head, or the call's status.
    pub async fn unary<R: Message + Default>(
        &self,
        app: &TestApp,
        request: &impl Message,
    ) -> Result<(R, Head), Status> {
        let mut stream = self
            .start(app, request)
            .await
            .map_err(|(_, status)| status)?;
        let Some(message) = stream.message::<R>().await? else {
            return Err(Status::internal("the call ended without a message"));
        };
        assert!(
            stream.message::<R>().await?.is_none(),
            "a unary call answered with more than one message"
        );
        Ok((message, stream.head))
    }
}

impl WebStream {
    /// The next message; `Ok(None)` when the trailer frame says the call succeeded,
    /// `Err` with the trailer frame's status when it failed.
    pub async fn message<R: Message + Default>(&mut self) -> Result<Option<R>, Status> {
        if self.trailers.is_some() {
            return Ok(None);
        }
        loop {
            if self.buffer.len() >= 5 {
                let flag = self.buffer[0];
                let length = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
                if self.buffer.len() >= 5 + length {
                    self.buffer.advance(5);
                    let frame = self.buffer.split_to(length).freeze();
                    if flag & 0x80 == 0 {
                        assert_eq!(flag, 0, "compressed frames were not asked for");
                        return Ok(Some(R::decode(frame).expect("a well-formed message")));
                    }
                    let fields: Vec<(String, String)> = std::str::from_utf8(&frame)
                        .expect("the trailer frame is text")
                        .split("\r\n")
                        .filter(|line| !line.is_empty())
                        .map(|line| {
                            let (name, value) = line.split_once(':').expect("a trailer line");
                            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
                        })
                        .collect();
                    let status = status_of(&fields).expect("the trailer frame has grpc-status");
                    self.trailers = Some(fields);
                    return match status.code() {
                        Code::Ok => Ok(None),
                        _ => Err(status),
                    };
                }
            }
            match self.body.chunk().await {
                Some(data) => self.buffer.extend_from_slice(&data),
                None => {
                    return Err(Status::internal(format!(
                        "the body ended without a trailer frame ({} bytes left over)",
                        self.buffer.len()
                    )));
                }
            }
        }
    }
}

/// A POST over HTTP/2 on a new connection: the response head and its body.
async fn h2_post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (Head, h2::RecvStream) {
    let stream = connect(app, b"h2").await;
    let (client, connection) = h2::client::handshake(stream)
        .await
        .expect("the HTTP/2 handshake succeeds");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client
        .ready()
        .await
        .expect("the connection takes a request");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{}{path}", authority(app)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).unwrap();
    let (response, mut send) = client
        .send_request(request, false)
        .expect("the request is sent");
    // A server that answers before reading the body (a refusal) may have reset the
    // stream already; its answer says what happened.
    let _ = send.send_data(Bytes::from(body), true);
    let response = response.await.expect("an HTTP/2 response");
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (
        Head {
            status: parts.status.as_u16(),
            headers,
        },
        body,
    )
}
