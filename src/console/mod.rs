//! The web console's port: HTTPS (server-authenticated TLS, ALPN h2 and http/1.1)
//! serving the console's static files and the broker's gRPC services over gRPC-Web.
//! The page calls the same services, through the same gate, policy and audit, as
//! every other client; only the way a caller proves who they are differs (a signed
//! web session cookie instead of a client certificate).

pub mod schema;

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use tokio::net::TcpListener;
use tonic_web::GrpcWebLayer;
use tower::{Layer, Service, ServiceExt};

use crate::auth::web_session::SessionKey;
use crate::domain::account::SignInPolicy;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// What the console port needs besides the services it carries.
pub struct ConsoleSettings {
    pub listener: TcpListener,
    pub session_key: SessionKey,
    pub policy: SignInPolicy,
    /// The certificate and key browsers see; `None` uses the broker's server
    /// certificate (from the deployment's own CA, which browsers do not trust unless
    /// it is installed on the clinic's computers).
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// Serve the console's files from this directory instead of the copies built
    /// into the binary: for working on the console without rebuilding.
    pub assets_dir: Option<PathBuf>,
}

/// Same-origin only, no inline code, media from the page's own camera and peers.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Where the console's files come from.
#[derive(Clone)]
pub struct Assets {
    dir: Option<PathBuf>,
    schema: Bytes,
}

impl Assets {
    pub fn new(dir: Option<PathBuf>) -> Self {
        let schema = schema::from_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        Self {
            dir,
            schema: Bytes::from(schema.to_string()),
        }
    }

    /// The file at URL path `path`, if the console has one; the built-in files and
    /// the schema are served without copying.
    fn get(&self, path: &str) -> Option<Bytes> {
        let path = if path == "/" { "/index.html" } else { path };
        if path == "/schema.json" {
            return Some(self.schema.clone());
        }
        match &self.dir {
            Some(dir) => read_below(dir, path).map(Bytes::from),
            None => embedded::ASSETS
                .iter()
                .find(|(name, _)| *name == path)
                .map(|(_, bytes)| Bytes::from_static(bytes)),
        }
    }
}

/// Reads `url_path` inside `root`, refusing anything that would leave it.
fn read_below(root: &Path, url_path: &str) -> Option<Vec<u8>> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return None;
    }
    let path = root.join(relative);
    path.is_file().then(|| std::fs::read(path).ok()).flatten()
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure_headers(&mut response);
    response
}

fn secure_headers(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), geolocation=()"),
    );
}

fn static_file(assets: &Assets, request: &Request<Body>) -> Response<Body> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let path = request.uri().path();
    let Some(bytes) = assets.get(path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let kind = if path == "/" {
        "text/html; charset=utf-8"
    } else {
        content_type(path)
    };
    let body = if request.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Small files; always revalidated so that an upgrade reaches every browser.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure_headers(&mut response);
    response
}

/// A request from a page of another origin: refused before any service sees it
/// (the session cookie is SameSite=Strict too; this is the second lock).
fn cross_origin(request: &Request<Body>) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return false;
    };
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin != format!("https://{host}"),
        _ => true,
    }
}

/// Sends gRPC and gRPC-Web calls to the services and everything else to the files.
#[derive(Clone)]
pub struct ConsoleService {
    grpc: tonic_web::GrpcWebService<axum::Router>,
    assets: Assets,
}

impl ConsoleService {
    pub fn new(grpc: axum::Router, assets: Assets) -> Self {
        Self {
            grpc: GrpcWebLayer::new().layer(grpc),
            assets,
        }
    }
}

impl Service<Request<Body>> for ConsoleService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if cross_origin(&request) {
            return Box::pin(async {
                Ok(plain(
                    StatusCode::FORBIDDEN,
                    "cross-origin request refused\n",
                ))
            });
        }
        let is_grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        if !is_grpc {
            let response = static_file(&self.assets, &request);
            return Box::pin(async move { Ok(response) });
        }
        let grpc = self.grpc.clone();
        Box::pin(async move {
            match grpc.oneshot(request).await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(never) => match never {},
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_console_has_its_page() {
        let assets = Assets::new(None);
        let index = assets.get("/").expect("index.html is embedded");
        assert!(String::from_utf8_lossy(&index).contains("<html"));
        assert!(assets.get("/schema.json").is_some());
        assert!(assets.get("/no-such-file.js").is_none());
    }

    #[test]
    fn paths_cannot_leave_the_console_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "x").unwrap();
        assert_eq!(read_below(dir.path(), "/app.js"), Some(b"x".to_vec()));
        assert_eq!(read_below(dir.path(), "/../etc/passwd"), None);
        assert_eq!(read_below(dir.path(), "/./app.js"), None);
    }
}
