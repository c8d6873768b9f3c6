//! The broker under test: a fresh SQLite database with `n` clinic nurses and `n`
//! cardiologists, a fresh PKI, one consented consultation per pair starting in five
//! minutes (so its session window is open), and the session service over mutual TLS
//! on an ephemeral port.
//!
//! `server::run` keeps its relay to itself, so the benchmark serves `SessionService`
//! on its own, with the same TLS configuration, gate, handler and relay and a plainer
//! accept loop (no handshake limits), to read the relay's counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use teleconsult::audit::{Actor, AuditEntry, Outcome, now_micros};
use teleconsult::auth::pki::{ClientSubject, PkiDirectory, Validity};
use teleconsult::auth::{CertificateIdentity, PeerInfo, tls};
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, Consultation,
    ConsultationId, Event, PatientRef,
};
use teleconsult::domain::{InvalidValue, ids, schedule::Window};
use teleconsult::proto::v1::session_service_server::SessionServiceServer;
use teleconsult::relay::{Relay, RelaySettings, media::MediaSettings};
use teleconsult::store::SharedStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

use crate::clients::{Credential, Plan};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn valid<T>(value: std::result::Result<T, InvalidValue>) -> Result<T> {
    value.map_err(|invalid| invalid.0.into())
}

const INSTITUTIONS: &str = r#"institutions = [
  { id = "bench-clinic", kind = "inviting", name_zh = "比如县人民医院", name_en = "Clinic" },
  { id = "bench-hospital", kind = "consulting", name_zh = "浙大二院", name_en = "Hospital" },
]
"#;

const PAIR: &str = r#"[[users]]
id = "nurse-{n}"
institution = "bench-clinic"
role = "clinic_staff"
name_zh = "达瓦"
name_en = "Nurse {n}"
[[users]]
id = "doctor-{n}"
institution = "bench-hospital"
role = "doctor"
name_zh = "陈明"
name_en = "Doctor {n}"
specialist = { specialties = ["cardiology"], title = "chief physician", languages = ["mandarin"] }
"#;

/// Packets the relay has counted, summed over every room: read from publishers, written
/// to subscribers (summed over subscribers), and turned away by a full subscriber queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayCounters {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

pub struct Broker {
    /// What the client process needs to join every consultation.
    pub plan: Plan,
    relay: Relay,
    consultations: Vec<ConsultationId>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub async fn start(pairs: usize) -> Result<Broker> {
        let dir = tempfile::tempdir()?;
        let store = teleconsult::store::open(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await?;
        let users: String = (0..pairs)
            .map(|n| PAIR.replace("{n}", &format!("{n:02}")))
            .collect();
        let seed = teleconsult::directory_file::parse(&format!("{INSTITUTIONS}{users}"))?;
        let import = AuditEntry::new(Actor::local_operator(), "bench", "sfu", Outcome::Ok);
        store.import_directory(&seed, import).await?;

        let pki = PkiDirectory::new(dir.path().join("pki"));
        pki.init("bench CA", &["localhost".into()])?;
        let ca = pki.authority()?;
        let credential = |user: String, institution: &str, role: &str| -> Result<Credential> {
            let subject = ClientSubject {
                user: user.clone(),
                institution: institution.into(),
                role: role.into(),
            };
            let issued = ca.issue_client(&subject, Validity::days(1))?;
            let (cert_pem, key_pem) = (issued.cert_pem, issued.key_pem);
            Ok(Credential {
                user,
                cert_pem,
                key_pem,
            })
        };
        let (mut plan_pairs, mut consultations) = (Vec::new(), Vec::new());
        for n in 0..pairs {
            let (nurse, doctor) = (format!("nurse-{n:02}"), format!("doctor-{n:02}"));
            let consultation = book(&store, &nurse, &doctor).await?;
            let nurse = credential(nurse, "bench-clinic", "clinic_staff")?;
            let doctor = credential(doctor, "bench-hospital", "doctor")?;
            plan_pairs.push((consultation.to_string(), [nurse, doctor]));
            consultations.push(consultation);
        }

        let files = tls::TlsFiles {
            client_ca: pki.ca_cert(),
            server_cert: pki.server_cert(),
            server_key: pki.server_key(),
            crl: Some(pki.crl()),
        };
        let (tls, revocations) = tls::server_config(&files, None, &[b"h2"])?;
        // Media on loopback; everything else as deployed (quality summaries every 10 s).
        let media = MediaSettings {
            bind_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            ..MediaSettings::default()
        };
        let settings = RelaySettings {
            media,
            ..RelaySettings::default()
        };
        let relay = Relay::new(settings, store.clone(), Default::default());
        let gate = teleconsult::api::gate::Gate::new(store, revocations, None);
        let session = teleconsult::api::Session::new(gate, relay.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let stop = CancellationToken::new();
        let (connections, incoming) = mpsc::channel(64);
        tokio::spawn(accept(
            listener,
            TlsAcceptor::from(tls),
            connections,
            stop.clone(),
        ));
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(SessionServiceServer::with_interceptor(session, identify))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::ReceiverStream::new(incoming),
                    stopped,
                )
                .await;
            if let Err(error) = served {
                eprintln!("the session service stopped: {error}");
            }
        });
        let ca_pem = ca.cert_pem().to_owned();
        let pairs = plan_pairs;
        Ok(Broker {
            plan: Plan {
                address,
                ca_pem,
                pairs,
            },
            relay,
            consultations,
            stop,
            _dir: dir,
        })
    }

    pub async fn counters(&self) -> RelayCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut counters = RelayCounters::default();
        for id in &self.consultations {
            let Some(room) = self.relay.room(id).await else {
                continue;
            };
            for track in room.published().await {
                counters.received += load(&track.counters.packets_in);
                counters.dropped += load(&track.counters.dropped);
            }
            for member in room.members().await {
                counters.forwarded += member.forwarded().await.iter().map(|f| f.2).sum::<u64>();
            }
        }
        counters
    }

    /// Closes every session and stops serving.
    pub async fn stop(self) {
        self.relay.shutdown().await;
        self.stop.cancel();
    }
}

/// A consented cardiology consultation between `nurse` and `doctor` from five minutes
/// from now, written straight to the store.
async fn book(store: &SharedStore, nurse: &str, doctor: &str) -> Result<ConsultationId> {
    let now = now_micros();
    let start = now + time::Duration::minutes(5);
    let mut random = [0u8; 10];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| "no randomness")?;
    let request = BookingRequest {
        doctor: valid(ids::UserId::parse(doctor))?,
        window: valid(Window::new(start, start + time::Duration::minutes(30)))?,
        patient: valid(PatientRef::parse("BIRU-2026-0042"))?,
        specialty: valid(ids::Specialty::parse("cardiology"))?,
        reason: valid(ClinicalText::required("exertional chest pain", 100))?,
        case_summary: ClinicalText::default(),
    };
    let (clinic, hospital) = ("bench-clinic", "bench-hospital");
    let consultation = Consultation::booked(
        ConsultationId::from_random(random),
        request,
        valid(ids::InstitutionId::parse(clinic))?,
        valid(ids::InstitutionId::parse(hospital))?,
        valid(ids::UserId::parse(nurse))?,
        true,
        now,
    )?;
    let target = format!("consultation:{}", consultation.id);
    let audit = AuditEntry::new(Actor::system("bench"), "bench.book", target, Outcome::Ok);
    store
        .create_consultation(&consultation, audit.clone())
        .await?;
    let by = valid(ids::UserId::parse(nurse))?;
    let consent = ConsentRecord::new(Consenter::Patient, ConsentMethod::Written, by, now, "")
        .map_err(|(field, invalid)| format!("{field}: {}", invalid.0))?;
    let consented = consultation.apply(Event::RecordConsent(consent))?;
    store.update_consultation(&consented, audit).await?;
    Ok(consultation.id)
}

/// Hands the gate the verified certificate's identity, as the server's accept loop does.
fn identify(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let identity = request
        .peer_certs()
        .and_then(|chain| CertificateIdentity::from_der(chain.first()?).ok())
        .map(Arc::new);
    let remote_addr = request.remote_addr();
    let peer = PeerInfo {
        channel: teleconsult::auth::Channel::Mutual,
        remote_addr,
        identity,
    };
    request.extensions_mut().insert(peer);
    Ok(request)
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
    stop: CancellationToken,
) {
    while let Some(Ok((tcp, _))) = stop.run_until_cancelled(listener.accept()).await {
        let _ = tcp.set_nodelay(true);
        let (acceptor, connections) = (acceptor.clone(), connections.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
            if let Ok(Ok(stream)) = handshake.await {
                let _ = connections.send(Ok(stream)).await;
            }
        });
    }
}
