//! Who plays the demo: three people of the example directory, each reaching the broker
//! over mutual TLS with the development certificate that names them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use teleconsult::auth::pki::PkiDirectory;
use teleconsult::domain::directory::Role;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use teleconsult::proto::v1::session_service_client::SessionServiceClient;
use teleconsult::store::DirectorySeed;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::super::client::describe;

pub const CLINIC: &str = "biru-county-hospital";
pub const CONSULTING: &str = "zju2-hospital";
pub const SPECIALTY: &str = "cardiology";

/// The development server certificate names `localhost` (and the loopback addresses).
const SERVER_NAME: &str = "localhost";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The user ids of the demo's three people.
pub struct Roles {
    pub nurse: String,
    pub cardiologist: String,
    pub interpreter: String,
}

impl Roles {
    /// A clinic_staff user of Biru County People's Hospital, a cardiologist of the ZJU
    /// Second Affiliated Hospital and a Tibetan–Mandarin interpreter (Biru's own, if it
    /// has one), as the example directory lists them.
    pub fn from_seed(seed: &DirectorySeed) -> anyhow::Result<Roles> {
        let active = |role, institution| active_users(seed, role, institution);
        let nurse = active(Role::ClinicStaff, Some(CLINIC))
            .next()
            .with_context(|| format!("the example directory has no clinic staff of {CLINIC}"))?;
        let cardiologist = active(Role::Doctor, Some(CONSULTING))
            .find(|id| {
                seed.specialists.iter().any(|s| {
                    s.user_id.as_str() == id
                        && s.specialties.iter().any(|x| x.as_str() == SPECIALTY)
                })
            })
            .with_context(|| {
                format!("the example directory has no {SPECIALTY} doctor of {CONSULTING}")
            })?;
        let interpreter = active(Role::Interpreter, Some(CLINIC))
            .chain(active(Role::Interpreter, None))
            .next()
            .context("the example directory has no interpreter")?;
        Ok(Roles {
            nurse,
            cardiologist,
            interpreter,
        })
    }
}

/// The ids of the active users with `role`, of `institution` if given.
fn active_users<'a>(
    seed: &'a DirectorySeed,
    role: Role,
    institution: Option<&'a str>,
) -> impl Iterator<Item = String> + 'a {
    seed.users
        .iter()
        .filter(move |u| u.active && u.role == role)
        .filter(move |u| institution.is_none_or(|i| u.institution.as_str() == i))
        .map(|u| u.id.to_string())
}

/// One person at their own workstation: a mutually authenticated connection to the
/// broker and the typed clients over it.
pub struct Person {
    pub id: String,
    /// `Dawa 达瓦`.
    pub name: String,
    /// `Biru County People's Hospital`.
    pub institution: String,
    pub role: String,
    pub channel: Channel,
    pub scheduling: SchedulingServiceClient<Channel>,
    pub session: SessionServiceClient<Channel>,
}

impl Person {
    /// Connects as `user` with their development certificate and asks the broker who
    /// it takes them for: the name printed is the one the broker authenticated.
    pub async fn connect(pki_dir: &Path, address: SocketAddr, user: &str) -> anyhow::Result<Self> {
        let pki = PkiDirectory::new(pki_dir);
        let read = |path: std::path::PathBuf| {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(pki.ca_cert())?))
            .identity(Identity::from_pem(
                read(pki.client_cert(user))?,
                read(pki.client_key(user))?,
            ))
            .domain_name(SERVER_NAME);
        let channel = Channel::from_shared(format!("https://{address}"))
            .context("the broker's address")?
            .tls_config(tls)
            .context("configuring TLS")?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("connecting to the broker at {address} as {user}"))?;
        let who = DirectoryServiceClient::new(channel.clone())
            .who_am_i(pb::WhoAmIRequest::default())
            .await
            .map_err(|status| anyhow::anyhow!("WhoAmI as {user}: {}", describe(&status)))?
            .into_inner();
        let (person, institution) = (who.user.unwrap_or_default(), who.institution);
        Ok(Person {
            id: user.to_owned(),
            name: format!("{} {}", person.display_name_en, person.display_name_zh),
            institution: institution.map(|i| i.name_en).unwrap_or_default(),
            role: super::super::views::role(person.role),
            channel: channel.clone(),
            scheduling: SchedulingServiceClient::new(channel.clone()),
            session: SessionServiceClient::new(channel),
        })
    }

    /// `Dawa 达瓦 (biru-nurse-dawa)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }
}
