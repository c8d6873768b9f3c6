//! Command-line interface. `anyhow` lives here and in start-up only.

mod account;
mod audit;
mod availability;
mod client;
mod consult;
mod consultation_text;
mod demo;
mod directory;
mod local_time;
mod opinion;
mod pki;
mod serve;
mod slots;
mod specialists;
mod views;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use teleconsult::config::{Config, LogFormat};
use teleconsult::store::{self, SharedStore};

/// The data directory a development broker uses when no config file is given.
pub const DEFAULT_DATA_DIR: &str = "teleconsult-data";

#[derive(Debug, Parser)]
#[command(
    name = "teleconsult",
    version,
    about = "Telemedicine consultation broker"
)]
pub struct Cli {
    /// Log output: human-readable text or JSON lines.
    #[arg(long, global = true, value_enum, env = "TELECONSULT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `teleconsult=debug,info` (RUST_LOG wins).
    #[arg(long, global = true, env = "TELECONSULT_LOG_FILTER")]
    log_filter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker. Without --config: a development broker with generated
    /// certificates and an embedded database in the data directory.
    Serve(serve::ServeArgs),
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Certificate authority: create, issue client certificates, revoke.
    Pki {
        #[command(subcommand)]
        command: pki::PkiCommand,
    },
    /// The directory of institutions, users and specialists.
    Directory {
        #[command(subcommand)]
        command: directory::DirectoryCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Web console passwords and enrollment links (client, as an admin).
    Account {
        #[command(subcommand)]
        command: account::AccountCommand,
    },
    /// Who the broker takes you for (client; --as USER).
    Whoami(specialists::WhoAmIArgs),
    /// Find specialists (client).
    Specialists {
        #[command(subcommand)]
        command: specialists::SpecialistsCommand,
    },
    /// Find free slots (client).
    Slots {
        #[command(subcommand)]
        command: slots::SlotsCommand,
    },
    /// Book, request and manage consultations (client).
    Consult {
        #[command(subcommand)]
        command: consult::ConsultCommand,
    },
    /// File, sign, read and verify written opinions (client).
    Opinion {
        #[command(subcommand)]
        command: opinion::OpinionCommand,
    },
    /// A doctor's weekly hours and exceptions (client).
    Availability {
        #[command(subcommand)]
        command: availability::AvailabilityCommand,
    },
    /// The whole story in one command: a development broker on a fresh data directory,
    /// a consult booked, held live (synthetic audio and video) and reported on.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Parse the file (with TELECONSULT_* overrides) and load its TLS material.
    Check {
        #[arg(long, env = "TELECONSULT_CONFIG")]
        config: PathBuf,
    },
}

/// Where the database is, in this order: `--database-url`, the config file's
/// `database.url` (with its `TELECONSULT_DATABASE__URL` override), that override on its
/// own, or the development data directory's SQLite file.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite:///path/file.db` or `postgres://user@host/db`.
    #[arg(long, env = "TELECONSULT_DATABASE_URL")]
    database_url: Option<String>,
    /// Take the database from this config file.
    #[arg(long, env = "TELECONSULT_CONFIG")]
    config: Option<PathBuf>,
    /// The development data directory.
    #[arg(long, env = "TELECONSULT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

impl DatabaseArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.config {
            return Ok(Config::load(path)?.database.url);
        }
        if let Ok(url) = std::env::var(format!("{}DATABASE__URL", teleconsult::config::ENV_PREFIX))
        {
            return Ok(url);
        }
        Ok(sqlite_url(&self.data_dir))
    }

    /// Opens the database, creating an SQLite file if there is none yet.
    pub async fn open(&self) -> anyhow::Result<SharedStore> {
        let url = self.url()?;
        store::open(&url)
            .await
            .with_context(|| format!("opening the database {}", redact(&url)))
    }

    /// Opens an existing database; a missing SQLite file is an error (a mistyped path
    /// must not look like an empty, intact log).
    pub async fn open_existing(&self) -> anyhow::Result<SharedStore> {
        let url = self.url()?;
        store::open_existing(&url)
            .await
            .with_context(|| format!("opening the database {}", redact(&url)))
    }
}

pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("teleconsult.db").display())
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    teleconsult::server::init_crypto();
    let logging = |config: Option<&Config>| {
        let section = config.map(|c| c.log.clone()).unwrap_or_default();
        teleconsult::telemetry::init(
            cli.log_format.unwrap_or(section.format),
            cli.log_filter.as_deref().unwrap_or(&section.filter),
        );
    };
    match cli.command {
        Command::Serve(arguments) => serve::run(arguments, logging).await,
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            logging(None);
            let loaded = Config::load(&config)?;
            let base = config.parent().unwrap_or(Path::new("."));
            let loaded = loaded.resolve_paths(base);
            teleconsult::server::check_tls(&loaded.tls.files())
                .context("loading the TLS material")?;
            if let Some((cert, key)) = loaded.console.certificate() {
                teleconsult::auth::tls::console_config(&cert, &key)
                    .context("loading the console's certificate")?;
            }
            println!(
                "{}: ok (listen {}, database {})",
                config.display(),
                loaded.server.listen,
                redact(&loaded.database.url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki { command } => {
            logging(None);
            pki::run(command)
        }
        Command::Directory { command } => {
            logging(None);
            directory::run(command).await
        }
        Command::Audit { command } => {
            logging(None);
            audit::run(command).await
        }
        Command::Account { command } => {
            logging(None);
            Ok(account::run(command).await)
        }
        Command::Whoami(arguments) => {
            logging(None);
            Ok(specialists::who_am_i(arguments).await)
        }
        Command::Specialists { command } => {
            logging(None);
            Ok(specialists::run(command).await)
        }
        Command::Slots { command } => {
            logging(None);
            Ok(slots::run(command).await)
        }
        Command::Consult { command } => {
            logging(None);
            Ok(consult::run(command).await)
        }
        Command::Opinion { command } => {
            logging(None);
            Ok(opinion::run(command).await)
        }
        Command::Availability { command } => {
            logging(None);
            Ok(availability::run(command).await)
        }
        Command::Demo(arguments) => demo::run(arguments, logging).await,
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://broker:secret@db/teleconsult"),
            "postgres://broker:***@db/teleconsult"
        );
        assert_eq!(redact("postgres://broker@db/x"), "postgres://broker@db/x");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
