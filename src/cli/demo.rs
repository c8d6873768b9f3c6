//! `teleconsult demo`: the whole story in one command. A development broker starts in
//! this process on a fresh data directory; a Biru County clinic nurse books a cardiology
//! consult with a Hangzhou cardiologist, records consent, both meet in a live session
//! with synthetic audio and video (real RTP over real WebRTC on loopback), an
//! interpreter joins, the cardiologist ends it and signs an opinion. Every step goes
//! through the public mTLS gRPC API as the user who would take it; at the end the
//! relay statistics and the consultation's audit trail are printed and the hash chain
//! verified.

mod cast;
mod report;
mod scheduling;
mod story;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::config::Config;
use teleconsult::server::{self, ServerSettings};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use self::cast::Roles;
use super::client::out;
use super::{serve, sqlite_url};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A fresh directory for the demo broker's certificates and database, created if
    /// missing; it must not hold a database yet. Default: a new temporary directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds of media after the interpreter has joined.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    media_seconds: u64,
}

pub async fn run(
    arguments: DemoArgs,
    logging: impl FnOnce(Option<&Config>),
) -> anyhow::Result<ExitCode> {
    let data_dir = fresh_data_dir(arguments.data_dir)?;
    let mut config = serve::development_config(&data_dir);
    config.server.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // The broker's own log would drown the story: warnings only (errors only from the
    // WebRTC stack, which warns about the transient states of every negotiation),
    // unless --log-filter or RUST_LOG asks for more.
    config.log.filter = "warn,rtc=error,webrtc=error".to_owned();
    logging(Some(&config));

    let started = Instant::now();
    let seed = serve::prepare_development(&data_dir)?;
    let roles = Roles::from_seed(&seed)?;
    let store = teleconsult::store::open(&config.database.url)
        .await
        .context("opening the demo database")?;
    let audit = AuditEntry::new(
        Actor::local_operator(),
        "directory.import",
        "file:deploy/directory.example.toml",
        Outcome::Ok,
    )
    .details(json!({ "development": true }));
    store
        .import_directory(&seed, audit)
        .await
        .context("importing the example directory")?;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .context("listening on loopback")?;
    let address = listener.local_addr()?;
    let settings = ServerSettings {
        tls: config.tls.files(),
        handshake: config.server.handshake_limits(),
        shutdown_grace: config.server.shutdown_grace(),
        scheduler: config.scheduling.scheduler(),
        relay: config.relay.settings(),
        audit: config.audit.settings(),
        console: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let broker = tokio::spawn(server::run(
        listener,
        settings,
        store,
        teleconsult::events::ConsultationEvents::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let rule = "=".repeat(78);
    out!("{rule}");
    out!("  teleconsult demo: a cardiology consult from Biru County, Nagqu, to Hangzhou");
    out!("{rule}");
    out!("  data directory  {}", data_dir.display());
    out!("  broker          {address} (in this process; gRPC over mutual TLS 1.3)");
    out!("  certificates    DEVELOPMENT CA in pki/: demo data only, never patient data");
    out!();

    let outcome = story::run(&data_dir, address, &roles, arguments.media_seconds).await;

    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(30), broker).await;
    let (consultation, media) = outcome.context("demo failed")?;
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => return Err(error).context("the broker failed"),
        Ok(Err(error)) => return Err(error).context("the broker task failed"),
        Err(_) => bail!("the broker did not stop within 30 s"),
    }

    media.print();
    let store = teleconsult::store::open(&sqlite_url(&data_dir))
        .await
        .context("reopening the demo database")?;
    let intact = report::audit_trail(&store, &consultation).await?;

    out!();
    let silent = media.silent_pairs();
    if !silent.is_empty() {
        bail!(
            "demo failed: media did not reach every participant: {}",
            silent.join("; ")
        );
    }
    if !intact {
        bail!("demo failed: the audit chain does not verify");
    }
    out!(
        "demo complete in {:.1} s: every step succeeded, media reached every participant, \
         the audit chain verified",
        started.elapsed().as_secs_f64()
    );
    out!(
        "(inspect it: teleconsult audit verify --data-dir {})",
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The data directory: the one given (which must not hold a database yet) or a new one
/// under the system's temporary directory.
fn fresh_data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let directory = match given {
        Some(directory) => directory,
        None => {
            let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
            std::env::temp_dir().join(format!(
                "teleconsult-demo-{}-{:x}",
                std::process::id(),
                nanos % 0x1_0000_0000
            ))
        }
    };
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating the data directory {}", directory.display()))?;
    if directory.join("teleconsult.db").exists() {
        bail!(
            "{} already holds a database: the demo needs a fresh data directory \
             (leave out --data-dir for a new temporary one)",
            directory.display()
        );
    }
    Ok(directory)
}
