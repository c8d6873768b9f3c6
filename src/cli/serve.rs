//! `teleconsult serve`: run the broker, from a config file or, without one, as a
//! development broker that makes everything it needs on first start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::auth::password;
use teleconsult::auth::pki::{ClientSubject, PkiDirectory, Validity};
use teleconsult::auth::web_session::SessionKey;
use teleconsult::config::{
    AuditSection, Config, ConsoleSection, DatabaseSection, LogSection, RelaySection,
    SchedulingSection, ServerSection, TlsSection,
};
use teleconsult::console::ConsoleSettings;
use teleconsult::directory_file;
use teleconsult::server::{self, ServerSettings};
use teleconsult::store::{DirectorySeed, SharedStore};
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
    /// Address of the web console (HTTPS; overrides the config); port 0 picks a
    /// free port.
    #[arg(long)]
    console_listen: Option<SocketAddr>,
    /// Serve the web console from this directory instead of the copy built into the
    /// binary (for working on the console without rebuilding).
    #[arg(long, env = "TELECONSULT_CONSOLE_DIR")]
    console_dir: Option<PathBuf>,
}

const DEV_LISTEN: &str = "127.0.0.1:7443";
const DEV_CONSOLE_LISTEN: &str = "127.0.0.1:7444";
/// Where a development broker writes its demo users' console passwords.
pub(super) const DEMO_PASSWORDS: &str = "console-demo-users.tsv";
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
        // A development broker asked for any free port takes any free console port
        // too, so that several can run side by side (tests do).
        if development && listen.port() == 0 && arguments.console_listen.is_none() {
            config.console.listen = Some(std::net::SocketAddr::new(listen.ip(), 0));
        }
    }
    if let Some(url) = arguments.database_url {
        config.database.url = url;
    }
    if let Some(listen) = arguments.console_listen {
        config.console.listen = Some(listen);
    }
    if let Some(dir) = arguments.console_dir {
        config.console.assets_dir = Some(dir);
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
    let demo_passwords = match &seed {
        Some(seed) => Some(demo_passwords(&arguments.data_dir, seed, &store).await?),
        None => None,
    };

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    let console = match config.console.listen {
        Some(listen) => {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening for the console on {listen}"))?;
            let session_key = SessionKey::load_or_create(&config.console.session_key)?;
            Some(ConsoleSettings {
                listener,
                session_key,
                policy: config.console.policy(),
                certificate: config.console.certificate(),
                assets_dir: config.console.assets_dir.clone(),
            })
        }
        None => None,
    };
    let console_address = match &console {
        Some(console) => Some(console.listener.local_addr()?),
        None => None,
    };
    if let Some(seed) = &seed {
        print_development_banner(&arguments.data_dir, address, seed);
    }
    if let (Some(console), Some(passwords)) = (console_address, &demo_passwords) {
        print_console_banner(&arguments.data_dir, console, passwords);
    }
    tracing::info!(%address, database = %redact(&config.database.url), "teleconsult broker listening");
    // Tests and scripts wait for these lines.
    if let Some(console) = console_address {
        println!("console on https://{}/", host_of(console));
    }
    println!("listening on {address}");

    let settings = ServerSettings {
        tls: config.tls.files(),
        handshake: config.server.handshake_limits(),
        shutdown_grace: config.server.shutdown_grace(),
        scheduler: config.scheduling.scheduler(),
        relay: config.relay.settings(),
        audit: config.audit.settings(),
        console,
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
        console: ConsoleSection {
            listen: Some(DEV_CONSOLE_LISTEN.parse().expect("a valid address")),
            session_key: data_dir.join("console-session.key"),
            ..ConsoleSection::default()
        },
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

fn host_of(address: SocketAddr) -> String {
    if address.ip().is_loopback() && address.is_ipv4() {
        format!("127.0.0.1:{}", address.port())
    } else {
        address.to_string()
    }
}

/// One demo user's console sign-in.
pub(super) struct DemoPassword {
    pub user: String,
    pub password: String,
    pub role: String,
    pub institution: String,
}

/// Gives every demo user without a password a random one (once), and returns them
/// all, as written to `console-demo-users.tsv` in the data directory.
async fn demo_passwords(
    data_dir: &Path,
    seed: &DirectorySeed,
    store: &SharedStore,
) -> anyhow::Result<Vec<DemoPassword>> {
    let path = data_dir.join(DEMO_PASSWORDS);
    let mut known: Vec<DemoPassword> = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut columns = line.split('\t');
                Some(DemoPassword {
                    user: columns.next()?.to_owned(),
                    password: columns.next()?.to_owned(),
                    role: columns.next()?.to_owned(),
                    institution: columns.next()?.to_owned(),
                })
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut missing = Vec::new();
    for user in seed.users.iter().filter(|u| u.active) {
        let listed = known.iter().any(|k| k.user == user.id.as_str());
        if !listed || store.credential(&user.id).await?.is_none() {
            known.retain(|k| k.user != user.id.as_str());
            missing.push(user.clone());
        }
    }
    if missing.is_empty() {
        return Ok(known);
    }
    // argon2 is deliberately slow: hash on every core.
    let hashing: Vec<_> = missing
        .into_iter()
        .map(|user| {
            tokio::task::spawn_blocking(move || {
                let secret = password::generate();
                password::hash(&secret).map(|hash| (user, secret, hash))
            })
        })
        .collect();
    for handle in hashing {
        let (user, secret, hash) = handle.await??;
        let now = teleconsult::audit::unix_micros(teleconsult::audit::now_micros());
        let audit = AuditEntry::new(
            Actor::local_operator(),
            "account.set_password",
            format!("user:{}", user.id),
            Outcome::Ok,
        )
        .details(json!({ "development": true, "generated": true }));
        store.set_password(&user.id, &hash, now, audit).await?;
        known.push(DemoPassword {
            user: user.id.to_string(),
            password: secret,
            role: user.role.to_string(),
            institution: user.institution.to_string(),
        });
    }
    let mut text = String::from("user\tpassword\trole\tinstitution\n");
    for k in &known {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            k.user, k.password, k.role, k.institution
        ));
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(known)
}

fn print_console_banner(data_dir: &Path, console: SocketAddr, passwords: &[DemoPassword]) {
    let line = "=".repeat(78);
    println!("  WEB CONSOLE      https://{}/", host_of(console));
    println!("  (its certificate is from the development CA above: your browser will warn;");
    println!("   import the CA certificate or accept the warning for local testing)");
    println!();
    println!(
        "  Demo sign-ins (all {} in {}):",
        passwords.len(),
        data_dir.join(DEMO_PASSWORDS).display()
    );
    let mut shown = std::collections::HashSet::new();
    for demo in passwords {
        // One user of each role is enough to try every page.
        if shown.insert(demo.role.clone()) {
            println!(
                "    demo sign-in  {:<26} {}  ({}, {})",
                demo.user, demo.password, demo.role, demo.institution
            );
        }
    }
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
