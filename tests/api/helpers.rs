//! Starts the real broker on an ephemeral port with a freshly made PKI and a fresh
//! database, and hands out typed clients that authenticate as a given user.

use std::net::SocketAddr;
use std::sync::Once;

use teleconsult::auth::pki::{
    CertificateAuthority, CertifiedKeyPem, ClientSubject, PkiDirectory, Validity,
};
use teleconsult::auth::tls::TlsFiles;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use teleconsult::server::{self, HandshakeLimits, ServerSettings};
use teleconsult::store::{self, DirectorySeed, SharedStore};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A small directory covering every role on both sides, and two institutions of each
/// kind so that "own" and "other" institution can be told apart.
pub const FIXTURE: &str = r#"
[[institutions]]
id = "platform"
kind = "platform"
name_zh = "远程会诊平台"
name_en = "Teleconsult platform"

[[institutions]]
id = "zju2-hospital"
kind = "consulting"
name_zh = "浙江大学医学院附属第二医院"
name_en = "Second Affiliated Hospital, Zhejiang University School of Medicine"
region = "Hangzhou, Zhejiang"

[[institutions]]
id = "zj-provincial"
kind = "consulting"
name_zh = "浙江省人民医院"
name_en = "Zhejiang Provincial People's Hospital"
region = "Hangzhou, Zhejiang"

[[institutions]]
id = "biru-county-hospital"
kind = "inviting"
name_zh = "比如县人民医院"
name_en = "Biru County People's Hospital"
region = "Biru County, Nagqu, Tibet"

[[institutions]]
id = "nagqu-peoples"
kind = "inviting"
name_zh = "那曲市人民医院"
name_en = "Nagqu People's Hospital"
region = "Nagqu, Tibet"

[[users]]
id = "platform-admin"
institution = "platform"
role = "admin"
name_zh = "平台管理员"
name_en = "Platform Admin"

[[users]]
id = "zju2-admin"
institution = "zju2-hospital"
role = "admin"
name_zh = "王丽"
name_en = "Wang Li"

[[users]]
id = "biru-admin"
institution = "biru-county-hospital"
role = "admin"
name_zh = "次仁"
name_en = "Tsering"

[[users]]
id = "zju2-cardio-chen"
institution = "zju2-hospital"
role = "doctor"
name_zh = "陈明"
name_en = "Chen Ming"

[users.specialist]
specialties = ["cardiology"]
title = "chief physician"
languages = ["mandarin", "english"]
on_call = true

[[users]]
id = "zju2-eye-zhou"
institution = "zju2-hospital"
role = "doctor"
name_zh = "周颖"
name_en = "Zhou Ying"

[users.specialist]
specialties = ["ophthalmology"]
title = "associate chief physician"
languages = ["mandarin"]

[[users]]
id = "zjpph-altitude-li"
institution = "zj-provincial"
role = "doctor"
name_zh = "李强"
name_en = "Li Qiang"

[users.specialist]
specialties = ["high-altitude-medicine", "cardiology"]
title = "chief physician"
languages = ["mandarin", "tibetan"]

[[users]]
id = "biru-nurse-dawa"
institution = "biru-county-hospital"
role = "clinic_staff"
name_zh = "达瓦"
name_en = "Dawa"

[[users]]
id = "nagqu-nurse-drolma"
institution = "nagqu-peoples"
role = "clinic_staff"
name_zh = "卓玛"
name_en = "Drolma"

[[users]]
id = "biru-interpreter-norbu"
institution = "biru-county-hospital"
role = "interpreter"
name_zh = "诺布"
name_en = "Norbu"
"#;

/// Media on loopback only, and short timers so that session tests finish quickly.
pub fn test_relay_settings() -> teleconsult::relay::RelaySettings {
    let defaults = teleconsult::relay::RelaySettings::default();
    teleconsult::relay::RelaySettings {
        media: teleconsult::relay::media::MediaSettings {
            bind_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ..defaults.media
        },
        empty_grace: std::time::Duration::from_secs(2),
        quality_interval: std::time::Duration::from_secs(1),
        ..defaults
    }
}

pub fn fixture() -> DirectorySeed {
    teleconsult::directory_file::parse(FIXTURE).expect("the test fixture parses")
}

static INIT: Once = Once::new();

fn init_once() {
    INIT.call_once(|| {
        teleconsult::server::init_crypto();
        if std::env::var_os("TEST_LOG").is_some() {
            teleconsult::telemetry::init(teleconsult::config::LogFormat::Text, "debug");
        }
    });
}

/// The web console's session key in tests: cookies can be forged with it (or with
/// another key) to test what the gate does with them.
pub const CONSOLE_SESSION_KEY: [u8; 32] = [0x5e; 32];

pub struct TestApp {
    pub address: SocketAddr,
    /// The web console's HTTPS port, when the app was spawned with one.
    pub console_address: Option<SocketAddr>,
    /// The server's event hub, for the session layer's lifecycle calls.
    pub events: teleconsult::events::ConsultationEvents,
    pub database_url: String,
    pub store: SharedStore,
    pub pki: PkiDirectory,
    pub ca: CertificateAuthority,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _dir: TempDir,
}

/// How a test app serves the web console.
struct ConsoleOptions {
    assets_dir: Option<std::path::PathBuf>,
    /// The console's own certificate and key (PEM files).
    certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Which database a test app runs on.
pub enum Backend {
    Sqlite,
    /// A fresh database on the server at `TELECONSULT_TEST_DATABASE_URL`.
    Postgres,
}

impl TestApp {
    /// The broker on SQLite with the fixture directory.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(Backend::Sqlite, HandshakeLimits::default())
            .await
            .expect("sqlite is always available")
    }

    /// The broker on SQLite with the fixture directory and a web console port
    /// (signed with [`CONSOLE_SESSION_KEY`], the default sign-in policy).
    pub async fn spawn_with_console() -> TestApp {
        Self::spawn_with_console_files(None).await
    }

    /// The same, serving the console's files from `assets_dir` when given.
    pub async fn spawn_with_console_files(assets_dir: Option<std::path::PathBuf>) -> TestApp {
        let console = ConsoleOptions {
            assets_dir,
            certificate: None,
        };
        Self::spawn_with(Backend::Sqlite, HandshakeLimits::default(), Some(console))
            .await
            .expect("sqlite is always available")
    }

    /// The same, the console presenting `certificate` (chain and key PEM files)
    /// instead of the broker's server certificate.
    pub async fn spawn_with_console_certificate(
        certificate: (std::path::PathBuf, std::path::PathBuf),
    ) -> TestApp {
        let console = ConsoleOptions {
            assets_dir: None,
            certificate: Some(certificate),
        };
        Self::spawn_with(Backend::Sqlite, HandshakeLimits::default(), Some(console))
            .await
            .expect("sqlite is always available")
    }

    /// `None` when the backend is PostgreSQL and no test database is configured.
    pub async fn spawn_on(backend: Backend, handshake: HandshakeLimits) -> Option<TestApp> {
        Self::spawn_with(backend, handshake, None).await
    }

    async fn spawn_with(
        backend: Backend,
        handshake: HandshakeLimits,
        console: Option<ConsoleOptions>,
    ) -> Option<TestApp> {
        init_once();
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => fresh_postgres_database().await?,
        };
        let store = store::open(&url).await.expect("opening the test database");
        store
            .import_directory(
                &fixture(),
                teleconsult::audit::AuditEntry::new(
                    teleconsult::audit::Actor::local_operator(),
                    "directory.import",
                    "fixture",
                    teleconsult::audit::Outcome::Ok,
                ),
            )
            .await
            .unwrap();

        let pki = PkiDirectory::new(dir.path().join("pki"));
        pki.init("test CA", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let ca = pki.authority().unwrap();
        let mut settings = ServerSettings {
            tls: TlsFiles {
                client_ca: pki.ca_cert(),
                server_cert: pki.server_cert(),
                server_key: pki.server_key(),
                crl: Some(pki.crl()),
            },
            handshake,
            shutdown_grace: std::time::Duration::from_secs(5),
            // Tests drive the scheduler's sweeps themselves, at the times they choose.
            scheduler: teleconsult::scheduler::SchedulerSettings {
                sweep_interval: std::time::Duration::from_secs(24 * 3600),
                ..Default::default()
            },
            relay: test_relay_settings(),
            audit: Default::default(),
            console: None,
        };
        let mut console_address = None;
        if let Some(console) = console {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            console_address = Some(listener.local_addr().unwrap());
            settings.console = Some(teleconsult::console::ConsoleSettings {
                listener,
                session_key: teleconsult::auth::web_session::SessionKey::from_bytes(
                    &CONSOLE_SESSION_KEY,
                ),
                policy: Default::default(),
                certificate: console.certificate,
                assets_dir: console.assets_dir,
            });
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel();
        let server_store = store.clone();
        let events = teleconsult::events::ConsultationEvents::default();
        let server_events = events.clone();
        let server = tokio::spawn(async move {
            server::run(listener, settings, server_store, server_events, async {
                let _ = stop.await;
            })
            .await
            .expect("the server runs");
        });
        Some(TestApp {
            address,
            console_address,
            events,
            database_url: url,
            store,
            pki,
            ca,
            shutdown: Some(shutdown),
            server: Some(server),
            _dir: dir,
        })
    }

    /// A client certificate for a fixture user, with the role and institution the
    /// directory gives them.
    pub fn certificate_for(&self, user: &str) -> CertifiedKeyPem {
        let seed = fixture();
        let found = seed
            .users
            .iter()
            .find(|u| u.id.as_str() == user)
            .unwrap_or_else(|| panic!("{user} is not in the fixture"));
        self.certificate(&ClientSubject {
            user: user.to_owned(),
            institution: found.institution.to_string(),
            role: found.role.to_string(),
        })
    }

    pub fn certificate(&self, subject: &ClientSubject) -> CertifiedKeyPem {
        self.ca.issue_client(subject, Validity::days(1)).unwrap()
    }

    fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.cert_pem()))
            .domain_name("localhost")
    }

    /// A channel presenting `certificate`. It connects lazily: under TLS 1.3 a
    /// refused certificate shows at the first call, as a real client sees it.
    pub fn channel_with(&self, certificate: &CertifiedKeyPem) -> Channel {
        let tls = self.tls().identity(Identity::from_pem(
            &certificate.cert_pem,
            &certificate.key_pem,
        ));
        self.channel(tls)
    }

    pub fn channel_without_certificate(&self) -> Channel {
        self.channel(self.tls())
    }

    pub fn channel(&self, tls: ClientTlsConfig) -> Channel {
        Channel::from_shared(format!("https://localhost:{}", self.address.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy()
    }

    /// A channel to the web console's port: server-authenticated TLS only, as a
    /// browser connects; callers add the session cookie to each request.
    pub fn console_channel(&self) -> Channel {
        let port = self
            .console_address
            .expect("the app was spawned with a console port")
            .port();
        Channel::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(self.tls())
            .unwrap()
            .connect_lazy()
    }

    pub fn channel_as(&self, user: &str) -> Channel {
        self.channel_with(&self.certificate_for(user))
    }

    pub fn directory_as(&self, user: &str) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel_as(user))
    }

    pub fn scheduling_as(&self, user: &str) -> SchedulingServiceClient<Channel> {
        SchedulingServiceClient::new(self.channel_as(user))
    }

    /// Runs the scheduler's sweep (escalations, no-shows) as if it were `now`. Sessions
    /// are never taken for abandoned here: `now` runs ahead of the session logs these
    /// tests write (`session::lifecycle` sweeps abandoned sessions on the real clock).
    pub async fn sweep_at(&self, now: time::OffsetDateTime) -> teleconsult::scheduler::SweepReport {
        teleconsult::scheduler::Scheduler::new(
            self.store.clone(),
            self.events.clone(),
            teleconsult::scheduler::SchedulerSettings {
                abandoned_session: std::time::Duration::from_secs(100 * 365 * 24 * 3600),
                ..Default::default()
            },
        )
        .sweep(now)
        .await
        .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// The SQLite file, when the app runs on SQLite.
    pub fn database_path(&self) -> Option<std::path::PathBuf> {
        self.database_url.strip_prefix("sqlite://").map(Into::into)
    }

    pub async fn audit_records(&self) -> Vec<teleconsult::audit::AuditRecord> {
        self.store.audit_records(0, u32::MAX).await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Creates a database of its own on the PostgreSQL server named by
/// `TELECONSULT_TEST_DATABASE_URL`, so that test runs never collide.
pub async fn fresh_postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("TELECONSULT_TEST_DATABASE_URL") else {
        eprintln!("TELECONSULT_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("connecting to TELECONSULT_TEST_DATABASE_URL");
    tokio::spawn(connection);
    let name = format!("tc_api_{}_{}", std::process::id(), rand_suffix());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating a test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    Some(format!("{base}/{name}"))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos}_{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
