//! Configuration: a TOML file, then `TELECONSULT_<SECTION>__<KEY>` environment
//! variables over it. Unknown keys, in the file or the environment, are errors: a
//! typo must not silently leave a setting at its default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::tls::TlsFiles;
use crate::domain::session::SessionWindow;
use crate::relay::RelaySettings;
use crate::relay::media::MediaSettings;
use crate::scheduler::SchedulerSettings;
use crate::server::HandshakeLimits;

mod audit;
mod console;

pub use audit::{AuditSection, SyslogSection};
pub use console::ConsoleSection;

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TELECONSULT_";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    pub tls: TlsSection,
    pub database: DatabaseSection,
    #[serde(default)]
    pub scheduling: SchedulingSection,
    #[serde(default)]
    pub relay: RelaySection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub console: ConsoleSection,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// The address the SFU's media sockets bind to.
    pub bind_ip: IpAddr,
    /// Addresses clients reach the broker at through a 1:1 NAT, advertised in ICE
    /// candidates instead of `bind_ip`.
    pub public_ips: Vec<IpAddr>,
    /// ICE over UDP.
    pub udp: bool,
    /// ICE over TCP (passive), for clinics whose firewalls drop UDP.
    pub tcp: bool,
    /// One address for the ICE-TCP connections of every session (e.g. `0.0.0.0:443`),
    /// advertised with `public_ips` when set; without it each connection listens on an
    /// ephemeral port of its own.
    pub ice_tcp_listen: Option<SocketAddr>,
    /// Minutes before a consultation's start its session opens.
    pub join_before_start_minutes: i64,
    /// Minutes after a consultation's end its session stays open.
    pub join_after_end_minutes: i64,
    /// Seconds a session with nobody left in it waits before it ends.
    pub empty_grace_secs: u64,
    /// Seconds between quality summaries in the session log.
    pub quality_interval_secs: u64,
}

impl Default for RelaySection {
    fn default() -> Self {
        let defaults = RelaySettings::default();
        Self {
            bind_ip: defaults.media.bind_ip,
            public_ips: Vec::new(),
            udp: true,
            tcp: true,
            ice_tcp_listen: None,
            join_before_start_minutes: defaults.window.before_start.whole_minutes(),
            join_after_end_minutes: defaults.window.after_end.whole_minutes(),
            empty_grace_secs: defaults.empty_grace.as_secs(),
            quality_interval_secs: defaults.quality_interval.as_secs(),
        }
    }
}

impl RelaySection {
    pub fn settings(&self) -> RelaySettings {
        let defaults = RelaySettings::default();
        RelaySettings {
            media: MediaSettings {
                bind_ip: self.bind_ip,
                public_ips: self.public_ips.clone(),
                udp: self.udp,
                tcp: self.tcp,
                ice_tcp: self.ice_tcp_listen,
                ..defaults.media
            },
            window: SessionWindow {
                before_start: time::Duration::minutes(self.join_before_start_minutes),
                after_end: time::Duration::minutes(self.join_after_end_minutes),
            },
            empty_grace: Duration::from_secs(self.empty_grace_secs),
            quality_interval: Duration::from_secs(self.quality_interval_secs),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingSection {
    /// Minutes an urgent request waits for an on-call doctor before it is offered to
    /// every doctor of the specialty and admins are told.
    pub urgent_escalation_minutes: u64,
    /// How often the broker looks for escalations, no-shows and abandoned sessions.
    pub sweep_interval_secs: u64,
    /// Minutes a session's log may stay silent before the session counts as abandoned
    /// (its broker stopped without ending it) and ends.
    pub abandoned_session_minutes: u64,
}

impl Default for SchedulingSection {
    fn default() -> Self {
        Self {
            urgent_escalation_minutes: 15,
            sweep_interval_secs: 30,
            abandoned_session_minutes: 10,
        }
    }
}

impl SchedulingSection {
    pub fn scheduler(&self) -> SchedulerSettings {
        SchedulerSettings {
            urgent_escalation: Duration::from_secs(self.urgent_escalation_minutes * 60),
            sweep_interval: Duration::from_secs(self.sweep_interval_secs),
            abandoned_session: Duration::from_secs(self.abandoned_session_minutes * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: SocketAddr,
    pub handshake_timeout_secs: u64,
    pub max_concurrent_handshakes: usize,
    /// On SIGINT/SIGTERM, how long calls in flight may take to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            handshake_timeout_secs: 10,
            max_concurrent_handshakes: 256,
            shutdown_grace_secs: 10,
        }
    }
}

impl ServerSection {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn handshake_limits(&self) -> HandshakeLimits {
        HandshakeLimits {
            timeout: Duration::from_secs(self.handshake_timeout_secs),
            max_concurrent: self.max_concurrent_handshakes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The CA that issues client certificates.
    pub client_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Certificate revocation list; re-read when it changes.
    pub crl: Option<PathBuf>,
}

impl TlsSection {
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            client_ca: self.client_ca.clone(),
            server_cert: self.server_cert.clone(),
            server_key: self.server_key.clone(),
            crl: self.crl.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite:///path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `teleconsult=debug,info`.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {variable}: {message}")]
    Environment { variable: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path`, applies the environment's overrides and checks the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, std::env::vars(), path)
    }

    /// Parses `text` with the overrides found in `environment`; `origin` names the text
    /// in error messages.
    pub fn parse(
        text: &str,
        environment: impl IntoIterator<Item = (String, String)>,
        origin: &Path,
    ) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_owned(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        apply_environment(&mut table, environment)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_error(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.handshake_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "server.handshake_timeout_secs must be at least 1".into(),
            ));
        }
        if self.server.max_concurrent_handshakes == 0 {
            return Err(ConfigError::Invalid(
                "server.max_concurrent_handshakes must be at least 1".into(),
            ));
        }
        if self.scheduling.sweep_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "scheduling.sweep_interval_secs must be at least 1".into(),
            ));
        }
        if !(self.relay.udp || self.relay.tcp) {
            return Err(ConfigError::Invalid(
                "relay: at least one of udp and tcp must be true".into(),
            ));
        }
        if let Some(ice_tcp) = self.relay.ice_tcp_listen {
            if !self.relay.tcp {
                return Err(ConfigError::Invalid(
                    "relay.ice_tcp_listen needs relay.tcp = true".into(),
                ));
            }
            let listen = self.server.listen;
            let overlapping = ice_tcp.ip() == listen.ip()
                || ice_tcp.ip().is_unspecified()
                || listen.ip().is_unspecified();
            if ice_tcp.port() != 0 && ice_tcp.port() == listen.port() && overlapping {
                return Err(ConfigError::Invalid(format!(
                    "relay.ice_tcp_listen {ice_tcp} collides with server.listen {listen}"
                )));
            }
        }
        if self.relay.quality_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "relay.quality_interval_secs must be at least 1".into(),
            ));
        }
        // A session still in progress must never look abandoned: its log has to speak
        // (quality) and an emptied room end (grace) well within the limit.
        let abandoned_secs = self.scheduling.abandoned_session_minutes.saturating_mul(60);
        let needed = (self.relay.quality_interval_secs.saturating_mul(3))
            .max(self.relay.empty_grace_secs.saturating_add(60));
        if abandoned_secs < needed {
            return Err(ConfigError::Invalid(format!(
                "scheduling.abandoned_session_minutes must be at least {} minutes: three \
                 relay.quality_interval_secs, and a minute more than relay.empty_grace_secs",
                needed.div_ceil(60)
            )));
        }
        if self.relay.join_before_start_minutes < 0 || self.relay.join_after_end_minutes < 0 {
            return Err(ConfigError::Invalid(
                "relay.join_before_start_minutes and join_after_end_minutes must not be negative"
                    .into(),
            ));
        }
        self.audit.validate()?;
        self.console.validate()?;
        if self.database.url.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "database.url must not be empty".into(),
            ));
        }
        Ok(())
    }

    /// Relative paths in a config file are relative to the file's directory.
    pub fn resolve_paths(mut self, base: &Path) -> Self {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.tls.client_ca);
        resolve(&mut self.tls.server_cert);
        resolve(&mut self.tls.server_key);
        if let Some(crl) = &mut self.tls.crl {
            resolve(crl);
        }
        self.audit.resolve_paths(resolve);
        self.console.resolve_paths(resolve);
        self
    }
}

/// Applies `TELECONSULT_SECTION__KEY=value` overrides, and
/// `TELECONSULT_SECTION__TABLE__KEY=value` for a table within a section (e.g.
/// `[audit.syslog]`). Variables without `__` are the command line's own (e.g.
/// `TELECONSULT_CONFIG`) and are left alone.
fn apply_environment(
    table: &mut toml::Table,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (variable, raw) in environment {
        let Some(key) = variable.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, name)) = key.split_once("__") else {
            continue;
        };
        let env_error = |message: String| ConfigError::Environment {
            variable: variable.clone(),
            message,
        };
        let (section, name) = (section.to_ascii_lowercase(), name.to_ascii_lowercase());
        let (table_name, name) = match name.split_once("__") {
            Some((table_name, key)) => (Some(table_name.to_owned()), key.to_owned()),
            None => (None, name),
        };
        if section.is_empty()
            || name.is_empty()
            || name.contains("__")
            || table_name.as_deref() == Some("")
        {
            return Err(env_error("expected TELECONSULT_<SECTION>__<KEY>".into()));
        }
        // Numbers and booleans are read as TOML; anything else is a string.
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut parsed| parsed.remove("v"))
            .filter(|value| !value.is_table() && !value.is_array())
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(mut section_table) = entry.as_table_mut() else {
            return Err(env_error(format!("{section} is not a section")));
        };
        if let Some(table_name) = table_name {
            let entry = section_table
                .entry(table_name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(inner) = entry.as_table_mut() else {
                return Err(env_error(format!("{section}.{table_name} is not a table")));
            };
            section_table = inner;
        }
        section_table.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [tls]
        client_ca = "pki/ca.pem"
        server_cert = "pki/server.pem"
        server_key = "pki/server.key.pem"

        [database]
        url = "sqlite:///var/lib/teleconsult/teleconsult.db"
    "#;

    fn parse(text: &str, environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
            Path::new("test.toml"),
        )
    }

    #[test]
    fn minimal_file_takes_defaults() {
        let config = parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.server, ServerSection::default());
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = parse(
            MINIMAL,
            &[
                ("TELECONSULT_SERVER__LISTEN", "127.0.0.1:9443"),
                ("TELECONSULT_SERVER__HANDSHAKE_TIMEOUT_SECS", "3"),
                (
                    "TELECONSULT_DATABASE__URL",
                    "postgres://broker@db/teleconsult",
                ),
                ("TELECONSULT_CONFIG", "ignored.toml"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 9443);
        assert_eq!(config.server.handshake_timeout_secs, 3);
        assert_eq!(config.database.url, "postgres://broker@db/teleconsult");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = parse(&format!("{MINIMAL}\n[server]\nlisten_port = 1\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("listen_port"), "{error}");
        let error = parse(MINIMAL, &[("TELECONSULT_SERVER__LISTEN_PORT", "1")]).unwrap_err();
        assert!(error.to_string().contains("listen_port"), "{error}");
        let error = parse(MINIMAL, &[("TELECONSULT_STORAGE__URL", "x")]).unwrap_err();
        assert!(error.to_string().contains("storage"), "{error}");
    }

    #[test]
    fn ice_tcp_listen_is_optional_and_checked() {
        assert_eq!(
            parse(MINIMAL, &[]).unwrap().relay.settings().media.ice_tcp,
            None
        );
        let config = parse(
            MINIMAL,
            &[("TELECONSULT_RELAY__ICE_TCP_LISTEN", "0.0.0.0:443")],
        )
        .unwrap();
        assert_eq!(
            config.relay.settings().media.ice_tcp,
            Some(SocketAddr::from(([0, 0, 0, 0], 443)))
        );
        let error = parse(
            &format!("{MINIMAL}\n[relay]\nice_tcp_listen = \"0.0.0.0:443\"\ntcp = false\n"),
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains("relay.tcp"), "{error}");
        let error = parse(
            MINIMAL,
            &[
                ("TELECONSULT_RELAY__ICE_TCP_LISTEN", "0.0.0.0:7443"),
                ("TELECONSULT_SERVER__LISTEN", "10.0.0.5:7443"),
            ],
        )
        .unwrap_err();
        assert!(error.to_string().contains("collides"), "{error}");
        let error = parse(MINIMAL, &[("TELECONSULT_RELAY__ICE_TCP_LISTEN", "443")]).unwrap_err();
        assert!(error.to_string().contains("socket address"), "{error}");
    }

    #[test]
    fn a_live_session_cannot_look_abandoned() {
        let config = parse(MINIMAL, &[]).unwrap();
        assert_eq!(
            config.scheduling.scheduler().abandoned_session,
            std::time::Duration::from_secs(600)
        );
        // The default grace (120 s) needs at least 3 minutes.
        let error = parse(
            MINIMAL,
            &[("TELECONSULT_SCHEDULING__ABANDONED_SESSION_MINUTES", "2")],
        )
        .unwrap_err();
        assert!(error.to_string().contains("at least 3 minutes"), "{error}");
        parse(
            MINIMAL,
            &[("TELECONSULT_SCHEDULING__ABANDONED_SESSION_MINUTES", "3")],
        )
        .unwrap();
    }

    #[test]
    fn missing_sections_are_named() {
        let error = parse("[database]\nurl = \"x\"\n", &[]).unwrap_err();
        assert!(error.to_string().contains("tls"), "{error}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let config = parse(MINIMAL, &[])
            .unwrap()
            .resolve_paths(Path::new("/etc/teleconsult"));
        assert_eq!(
            config.tls.client_ca,
            Path::new("/etc/teleconsult/pki/ca.pem")
        );
    }
}
