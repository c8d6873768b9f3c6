//! What every client command shares: how to reach the broker over mutual TLS as a
//! given user, how answers are printed, and how a refusal becomes an exit status.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use teleconsult::auth::pki::PkiDirectory;
use teleconsult::proto::v1::account_service_client::AccountServiceClient;
use teleconsult::proto::v1::audit_service_client::AuditServiceClient;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status};

/// `println!` for answers: when the reader has gone (`teleconsult consult list | head`)
/// the command ends quietly instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("writing to stdout: {error}");
        }
    }};
}
pub(crate) use out;

/// The development broker's address and certificates, as `teleconsult serve` makes them.
pub const DEFAULT_SERVER: &str = "https://localhost:7443";
pub const DEFAULT_PKI_DIR: &str = "teleconsult-data/pki";

/// Over lossy plateau links a handshake can take a while; longer than this is an outage.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// The broker: https://HOST:PORT.
    #[arg(long, env = "TELECONSULT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Act as this user, with <pki-dir>/clients/USER.pem and USER.key.pem.
    #[arg(long = "as", value_name = "USER", env = "TELECONSULT_USER")]
    as_user: Option<String>,
    /// Where --as finds certificates, and the default CA (<pki-dir>/ca.pem).
    #[arg(long, env = "TELECONSULT_PKI_DIR", default_value = DEFAULT_PKI_DIR)]
    pki_dir: PathBuf,
    /// The CA certificate (PEM) that issued the broker's certificate.
    #[arg(long = "ca", value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), instead of --as.
    #[arg(long = "cert", value_name = "PEM", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long = "key", value_name = "PEM", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Print the response messages as JSON (proto field and enum names, times in
    /// RFC 3339 UTC) instead of text with Asia/Shanghai times.
    #[arg(long)]
    pub json: bool,
}

/// Typed clients over one mutually authenticated connection.
pub struct Broker {
    pub account: AccountServiceClient<Channel>,
    pub audit: AuditServiceClient<Channel>,
    pub directory: DirectoryServiceClient<Channel>,
    pub scheduling: SchedulingServiceClient<Channel>,
    pub json: bool,
}

impl ConnectionArgs {
    fn identity_files(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            return Ok((cert.clone(), key.clone()));
        }
        let user = self
            .as_user
            .as_deref()
            .context("say who you are: --as USER (or TELECONSULT_USER), or --cert and --key")?;
        let pki = PkiDirectory::new(&self.pki_dir);
        let (cert, key) = (pki.client_cert(user), pki.client_key(user));
        if !cert.exists() {
            anyhow::bail!(
                "no certificate for {user} in {}: start the development broker there \
                 (`teleconsult serve`), issue one (`teleconsult pki issue`) or pass --cert and --key",
                pki.root().join("clients").display()
            );
        }
        Ok((cert, key))
    }

    fn ca_file(&self) -> PathBuf {
        self.ca_cert
            .clone()
            .unwrap_or_else(|| PkiDirectory::new(&self.pki_dir).ca_cert())
    }

    /// Connects and completes the TLS handshake; a broker that cannot be reached is
    /// reported as UNAVAILABLE like any other refusal.
    pub async fn connect(&self) -> anyhow::Result<Broker> {
        let server = if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("https://{}", self.server)
        };
        let endpoint = Channel::from_shared(server.clone())
            .with_context(|| format!("--server {server:?} is not a URL"))?;
        if endpoint.uri().scheme_str() != Some("https") {
            anyhow::bail!("--server must be an https:// URL: the broker only speaks mutual TLS");
        }
        let host = endpoint
            .uri()
            .host()
            .with_context(|| format!("--server {server:?} names no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let (cert, key) = self.identity_files()?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(
                &self.ca_file(),
                "CA certificate",
            )?))
            .identity(Identity::from_pem(
                read(&cert, "client certificate")?,
                read(&key, "client key")?,
            ))
            .domain_name(host);
        let channel = endpoint
            .tls_config(tls)
            .context("configuring TLS")?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|error| {
                Status::unavailable(format!("cannot connect to {server}: {}", chain(&error)))
            })?;
        Ok(Broker {
            account: AccountServiceClient::new(channel.clone()),
            audit: AuditServiceClient::new(channel.clone()),
            directory: DirectoryServiceClient::new(channel.clone()),
            scheduling: SchedulingServiceClient::new(channel),
            json: self.json,
        })
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// An error and its causes on one line: tonic's transport errors say little on top.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The canonical gRPC name of a status code, as in the gRPC specification.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Prints what went wrong and turns it into a failing exit status: a gRPC refusal as
/// `error: CODE: message`, anything else with its causes.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            match error.downcast_ref::<Status>() {
                Some(status) => eprintln!("error: {}", describe(status)),
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

pub fn describe(status: &Status) -> String {
    let code = code_name(status.code());
    let mut message = status.message().to_owned();
    // A status made from a transport failure carries its cause only as a source.
    if let Some(source) = status.source() {
        let cause = chain(source);
        if !message.contains(&cause) {
            message = if message.is_empty() {
                cause
            } else {
                format!("{message}: {cause}")
            };
        }
    }
    if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {message}")
    }
}

pub fn print_json(value: &serde_json::Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value always serialises")
    );
}

/// Columns of text, aligned by display width (Chinese characters take two cells).
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (column, cell) in cells.into_iter().enumerate() {
            text.push_str(cell);
            if column < last {
                text.push_str(&" ".repeat(widths[column] - width(cell) + 2));
            }
        }
        out!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Terminal cells a string takes: East Asian wide characters count two.
pub fn width(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_print_the_grpc_code() {
        let status = Status::permission_denied("clinic_staff may not accept consultations");
        assert_eq!(
            describe(&status),
            "PERMISSION_DENIED: clinic_staff may not accept consultations"
        );
        assert_eq!(describe(&Status::not_found("")), "NOT_FOUND");
    }

    /// clap checks argument definitions only when a command is parsed; this checks
    /// every subcommand, e.g. that no command's own flag clashes with a connection flag.
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn wide_characters_take_two_cells() {
        assert_eq!(width("陈明 Chen Ming"), 14);
        assert_eq!(width("Dawa"), 4);
    }
}
