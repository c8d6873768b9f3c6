//! What one repetition runs against: a fresh database holding a clinic and its staff
//! and a hospital whose doctors take 5-minute slots around the clock, the real broker
//! serving it over mutual TLS on an ephemeral port, and the slots still free.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::auth::pki::{CertifiedKeyPem, ClientSubject, PkiDirectory, Validity};
use teleconsult::auth::tls::TlsFiles;
use teleconsult::domain::InvalidValue;
use teleconsult::domain::directory::SlotMinutes;
use teleconsult::domain::ids::UserId;
use teleconsult::domain::schedule::{Availability, WeeklyInterval, Window};
use teleconsult::server::{self, ServerSettings};
use teleconsult::store::SharedStore;
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// The domain's constructors say why a value is invalid in an `InvalidValue`, which is
/// not an error type of its own.
pub fn valid<T>(value: std::result::Result<T, InvalidValue>) -> Result<T> {
    value.map_err(|invalid| invalid.0.into())
}

pub const CLINIC: &str = "bench-clinic";
pub const HOSPITAL: &str = "bench-hospital";
pub const SPECIALTY: &str = "cardiology";
const DOCTORS: usize = 32;
/// 32 doctors × 288 slots a day × 15 days ≈ 138,000 slots: more than a repetition's
/// phases can take.
const DAYS: i64 = 15;

const INSTITUTIONS: &str = r#"
institutions = [
  { id = "bench-clinic", kind = "inviting", name_zh = "比如县人民医院", name_en = "Bench clinic" },
  { id = "bench-hospital", kind = "consulting", name_zh = "浙大二院", name_en = "Bench hospital" },
]
"#;
/// TOML 1.0 keeps an inline table on one line.
const STAFF: &str = r#"{ id = "clinic-staff-{n}", institution = "bench-clinic", role = "clinic_staff", name_zh = "达瓦", name_en = "Nurse {n}" },
"#;
const DOCTOR: &str = r#"{ id = "doctor-{n}", institution = "bench-hospital", role = "doctor", name_zh = "陈明", name_en = "Doctor {n}", specialist = { specialties = ["cardiology"], title = "chief physician", languages = ["mandarin"], slot_minutes = 5 } },
"#;

/// The directory: [`INSTITUTIONS`], `staff` clinic staff and [`DOCTORS`] doctors.
fn directory(staff: usize) -> String {
    let numbered = |template: &str, count| -> String {
        (0..count)
            .map(|n| template.replace("{n}", &format!("{n:02}")))
            .collect()
    };
    let users = numbered(STAFF, staff) + &numbered(DOCTOR, DOCTORS);
    format!("{INSTITUTIONS}users = [\n{users}]\n")
}

pub fn staff(n: usize) -> String {
    format!("clinic-staff-{n:02}")
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database on the server at `TELECONSULT_BENCH_DATABASE_URL`.
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("TELECONSULT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn postgres_admin(sql: &str) -> Result<()> {
    let url = postgres_admin_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client.batch_execute(sql).await?)
}

/// Every doctor's slots from an hour from now, earliest first and doctors interleaved,
/// each handed out once: no two bookings of a repetition can collide.
pub struct Slots {
    all: Vec<(UserId, Window)>,
    next: AtomicUsize,
}

impl Slots {
    fn new(availability: &[Availability]) -> Result<Self> {
        let from = OffsetDateTime::now_utc() + Duration::hours(1);
        let range = valid(Window::new(from, from + Duration::days(DAYS)))?;
        let minutes = valid(SlotMinutes::parse(5))?;
        let mut all: Vec<_> = availability
            .iter()
            .flat_map(|a| {
                a.slots(minutes, &range)
                    .into_iter()
                    .map(|s| (a.doctor.clone(), s))
            })
            .collect();
        all.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let next = AtomicUsize::new(0);
        Ok(Self { all, next })
    }

    pub fn take(&self) -> (UserId, Window) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.all
            .get(n)
            .cloned()
            .expect("a repetition books fewer slots than offered")
    }
}

pub struct World {
    pub store: SharedStore,
    pub slots: Arc<Slots>,
    /// One per clinic staff member, in order.
    pub certificates: Vec<CertifiedKeyPem>,
    address: SocketAddr,
    ca_pem: String,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
    /// The fresh database's name, on PostgreSQL.
    pub postgres_database: Option<String>,
    _dir: TempDir,
}

impl World {
    /// A fresh database with `staff` clinic staff and the doctors' week-round hours,
    /// and the broker serving it.
    pub async fn start(backend: Backend, staff: usize) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let (url, postgres_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("bench.db").display()),
                None,
            ),
            Backend::Postgres => {
                let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
                let name = format!("tc_bench_{}_{nanos}", std::process::id());
                postgres_admin(&format!("CREATE DATABASE {name}")).await?;
                let admin = postgres_admin_url();
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base);
                (format!("{base}/{name}"), Some(name))
            }
        };
        let store = teleconsult::store::open(&url).await?;
        let operator = |action: &str, target: &str| {
            AuditEntry::new(Actor::local_operator(), action, target, Outcome::Ok)
        };
        let seed = teleconsult::directory_file::parse(&directory(staff))?;
        store
            .import_directory(&seed, operator("directory.import", "bench"))
            .await?;
        let week = (1..=7)
            .map(|day| valid(WeeklyInterval::new(day, 0, 1440)))
            .collect::<Result<Vec<_>>>()?;
        let mut availability = Vec::new();
        for profile in &seed.specialists {
            let doctor = profile.user_id.clone();
            let hours = Availability::new(doctor.clone(), week.clone(), vec![], false)
                .map_err(|(field, error)| format!("{field}: {error}"))?;
            let target = format!("availability:{doctor}");
            store
                .set_availability(&hours, operator("scheduling.set_availability", &target))
                .await?;
            availability.push(hours);
        }

        let pki = PkiDirectory::new(dir.path().join("pki"));
        pki.init("bench CA", &["localhost".into()])?;
        let ca = pki.authority()?;
        let certificates = (0..staff)
            .map(|n| {
                let subject = ClientSubject {
                    user: self::staff(n),
                    institution: CLINIC.into(),
                    role: "clinic_staff".into(),
                };
                ca.issue_client(&subject, Validity::days(1))
            })
            .collect::<Result<_, _>>()?;
        let settings = ServerSettings {
            tls: TlsFiles {
                client_ca: pki.ca_cert(),
                server_cert: pki.server_cert(),
                server_key: pki.server_key(),
                crl: Some(pki.crl()),
            },
            handshake: Default::default(),
            relay: Default::default(),
            audit: Default::default(),
            shutdown_grace: std::time::Duration::from_secs(1),
            // No sweeps during the measurement.
            scheduler: teleconsult::scheduler::SchedulerSettings {
                sweep_interval: std::time::Duration::from_secs(24 * 3600),
                ..Default::default()
            },
            console: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel();
        let events = teleconsult::events::ConsultationEvents::default();
        let served = store.clone();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stop.await;
            };
            if let Err(error) = server::run(listener, settings, served, events, stopped).await {
                eprintln!("the broker stopped: {error}");
            }
        });
        Ok(World {
            store,
            slots: Arc::new(Slots::new(&availability)?),
            certificates,
            address,
            ca_pem: ca.cert_pem().to_owned(),
            shutdown,
            server,
            postgres_database,
            _dir: dir,
        })
    }

    /// A connected HTTP/2 channel of its own, presenting `certificate`.
    pub async fn channel(&self, certificate: &CertifiedKeyPem) -> Result<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost")
            .identity(Identity::from_pem(
                &certificate.cert_pem,
                &certificate.key_pem,
            ));
        let endpoint = Channel::from_shared(format!("https://{}", self.address))?;
        Ok(endpoint.tls_config(tls)?.connect().await?)
    }

    /// Stops the broker and drops the PostgreSQL database.
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.server.await?;
        drop(self.store);
        if let Some(name) = self.postgres_database {
            postgres_admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
        }
        Ok(())
    }
}
