//! `teleconsult serve`: run the broker, from a config file or, without one, as a
//! development broker that makes everything it needs on first start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::auth::pki::{ClientSubject, PkiDirectory, Validity};
use teleconsult::config::{
    AuditSection, Config, DatabaseSection, LogSection, RelaySection, SchedulingSection,
    ServerSection, TlsSection,
};
use teleconsult::directory_file;
use teleconsult::server::{self, ServerSettings};
use teleconsult::store::DirectorySeed;
use tokio::net::TcpListener;

use super::{DEFAULT_DATA_DIR, redact, sqlite_url};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Production configuration (TOML). Without it, a development broker runs from
    /// --data-dir with generated certificates.
    #[arg(long, env = "TELECONSULT_CONFIG")]
    config: Option<PathBuf>,
    /// Where a development broker keeps its certificates and database.
    #[arg(long, env = "TELECONSULT_DATA_DIR", default_value = DEFAULT_DATA_DIR, conflicts_with = "config")]
    data_dir: PathBuf,
    /// Address to listen on (overrides the config); port 0 picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Database URL (overrides the config): sqlite://PATH or postgres://…
    #[arg(long, env = "TELECONSULT_DATABASE_URL")]
    database_url: Option<String>,
}

const DEV_LISTEN: &str = "127.0.0.1:7443";
const DEV_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub async fn run(
    arguments: ServeArgs,
    logging: impl FnOnce(Option<&Config>),
) -> anyhow::Result<ExitCode> {
    let development = arguments.config.is_none();
    let mut config = match &arguments.config {
        Some(path) => {
            let base = path.parent().unwrap_or(Path::new("."));
            Config::load(path)?.resolve_paths(base)
        }
        None => development_config(&arguments.data_dir),
    };
    if let Some(listen) = arguments.listen {
        config.server.listen = listen;
    }
    if let Some(url) = arguments.database_url {
        config.database.url = url;
    }
    logging(Some(&config));

    let seed = if development {
        Some(prepare_development(&arguments.data_dir)?)
    } else {
        // A production broker never generates trust material: what is missing is an
        // error the operator must fix.
        server::check_tls(&config.tls.files()).context("loading the TLS material")?;
        None
    };

    let store = teleconsult::store::open(&config.database.url)
        .await
        .with_context(|| format!("opening the database {}", redact(&config.database.url)))?;
    if let Some(seed) = &seed
        && store.institutions(None).await?.is_empty()
    {
        let audit = AuditEntry::new(
            Actor::local_operator(),
            "directory.import",
            "file:deploy/directory.example.toml",
            Outcome::Ok,
        )
        .details(json!({ "development": true }));
        store.import_directory(seed, audit).await?;
        tracing::info!("imported the example directory");
    }

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    if let Some(seed) = &seed {
        print_development_banner(&arguments.data_dir, address, seed);
    }
    tracing::info!(%address, database = %redact(&config.database.url), "teleconsult broker listening");
    // Tests and scripts wait for this line.
    println!("listening on {address}");

    let settings = ServerSettings {
        tls: config.tls.files(),
        handshake: config.server.handshake_limits(),
        shutdown_grace: config.server.shutdown_grace(),
        scheduler: config.scheduling.scheduler(),
        relay: config.relay.settings(),
        audit: config.audit.settings(),
    };
    let events = teleconsult::events::ConsultationEvents::default();
    server::run(listener, settings, store, events, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn development_config(data_dir: &Path) -> Config {
    let pki = PkiDirectory::new(data_dir.join("pki"));
    Config {
        server: ServerSection {
            listen: DEV_LISTEN.parse().expect("a valid address"),
            ..ServerSection::default()
        },
        tls: TlsSection {
            client_ca: pki.ca_cert(),
            server_cert: pki.server_cert(),
            server_key: pki.server_key(),
            crl: Some(pki.crl()),
        },
        database: DatabaseSection {
            url: sqlite_url(data_dir),
        },
        scheduling: SchedulingSection::default(),
        // A development broker keeps its media on this machine, like its API.
        relay: RelaySection {
            bind_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ..RelaySection::default()
        },
        log: LogSection::default(),
        audit: AuditSection::default(),
    }
}

/// Makes the development PKI (once) and a client certificate for every user of the
/// example directory that has none yet.
pub(super) fn prepare_development(data_dir: &Path) -> anyhow::Result<DirectorySeed> {
    let seed =
        directory_file::parse(directory_file::EXAMPLE).context("the bundled example directory")?;
    let pki = PkiDirectory::new(data_dir.join("pki"));
    if !pki.exists() {
        let sans: Vec<String> = DEV_SANS.iter().map(|s| s.to_string()).collect();
        pki.init("teleconsult DEVELOPMENT CA - not for patient data", &sans)?;
        std::fs::write(
            data_dir.join("README.txt"),
            "DEVELOPMENT DATA. The certificates in pki/ were generated by \
             `teleconsult serve` for local testing; their keys are on this disk \
             unprotected. Never use them for real patients: see certs/README.md.\n",
        )?;
    }
    for user in &seed.users {
        if !pki.client_cert(user.id.as_str()).exists() {
            let subject = ClientSubject {
                user: user.id.to_string(),
                institution: user.institution.to_string(),
                role: user.role.to_string(),
            };
            pki.issue_client(&subject, Validity::days(365))?;
        }
    }
    Ok(seed)
}

fn print_development_banner(data_dir: &Path, address: SocketAddr, seed: &DirectorySeed) {
    let pki = PkiDirectory::new(data_dir.join("pki"));
    let line = "=".repeat(78);
    let example = seed
        .users
        .iter()
        .find(|u| u.role == teleconsult::domain::directory::Role::ClinicStaff)
        .map(|u| u.id.to_string())
        .unwrap_or_default();
    let host = if address.ip().is_loopback() {
        format!("localhost:{}", address.port())
    } else {
        address.to_string()
    };
    println!("{line}");
    println!("  DEVELOPMENT BROKER: generated certificates, NOT FOR PATIENT DATA");
    println!("{line}");
    println!("  data directory   {}", data_dir.display());
    println!(
        "  database         {}",
        data_dir.join("teleconsult.db").display()
    );
    println!("  CA certificate   {}", pki.ca_cert().display());
    println!("  server cert      {}", pki.server_cert().display());
    println!("  CRL              {}", pki.crl().display());
    println!(
        "  client certs     {}  ({} demo users, every role)",
        pki.root().join("clients").display(),
        seed.users.len()
    );
    println!();
    println!("  Try it (as clinic staff {example}):");
    println!(
        "    grpcurl -cacert {ca} -cert {cert} -key {key} {host} teleconsult.v1.DirectoryService/WhoAmI",
        ca = pki.ca_cert().display(),
        cert = pki.client_cert(&example).display(),
        key = pki.client_key(&example).display(),
    );
    println!("{line}");
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
