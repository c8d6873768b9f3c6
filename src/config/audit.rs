//! The `[audit]` section: signed checkpoints of the audit log's head, and forwarding
//! to an audit record repository (`[audit.syslog]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::audit::syslog::{ForwarderTiming, SyslogSettings};
use crate::server::AuditSettings;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Seconds between signed checkpoints of the audit log's head (one is also written
    /// at shutdown), signed with `tls.server_key`; 0 writes none.
    pub checkpoint_interval_secs: u64,
    /// Forward every record to an audit repository (syslog over TLS).
    pub syslog: Option<SyslogSection>,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 300,
            syslog: None,
        }
    }
}

impl AuditSection {
    pub fn settings(&self) -> AuditSettings {
        AuditSettings {
            checkpoint_interval: (self.checkpoint_interval_secs > 0)
                .then(|| Duration::from_secs(self.checkpoint_interval_secs)),
            syslog: self.syslog.as_ref().map(SyslogSection::settings),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.syslog.as_ref().map_or(Ok(()), SyslogSection::validate)
    }

    /// Makes the repository's files relative to the config file's directory.
    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        if let Some(syslog) = &mut self.syslog {
            resolve(&mut syslog.ca);
            for path in [&mut syslog.client_cert, &mut syslog.client_key]
                .into_iter()
                .flatten()
            {
                resolve(path);
            }
        }
    }
}

/// An IHE ATNA audit record repository: RFC 5424 messages over TLS (RFC 5425).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// `host:port`, e.g. `arr.example.org:6514`.
    pub address: String,
    /// The name its certificate carries; the host of `address` when not given.
    pub server_name: Option<String>,
    /// The CA certificate(s) that issued its certificate (PEM).
    pub ca: PathBuf,
    /// Our certificate and key, for a repository that authenticates its senders.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// APP-NAME of the messages.
    #[serde(default = "default_app_name")]
    pub app_name: String,
}

fn default_app_name() -> String {
    "teleconsult".to_owned()
}

impl SyslogSection {
    /// The host part of `address`, without the brackets of an IPv6 address.
    fn host(&self) -> &str {
        let host = self
            .address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(host, _)| host);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    pub fn settings(&self) -> SyslogSettings {
        SyslogSettings {
            address: self.address.clone(),
            server_name: self
                .server_name
                .clone()
                .unwrap_or_else(|| self.host().to_owned()),
            ca: self.ca.clone(),
            client_identity: self.client_cert.clone().zip(self.client_key.clone()),
            app_name: self.app_name.clone(),
            hostname: None,
            timing: ForwarderTiming::default(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let port = self.address.rsplit_once(':').map(|(_, port)| port);
        if self.host().is_empty() || port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(ConfigError::Invalid(format!(
                "audit.syslog.address {:?} must be host:port",
                self.address
            )));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(ConfigError::Invalid(
                "audit.syslog: client_cert and client_key go together".into(),
            ));
        }
        if self.app_name.is_empty()
            || self.app_name.len() > 48
            || !self.app_name.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ConfigError::Invalid(
                "audit.syslog.app_name must be 1 to 48 printable ASCII characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const MINIMAL: &str = r#"
        [tls]
        client_ca = "pki/ca.pem"
        server_cert = "pki/server.pem"
        server_key = "pki/server.key.pem"

        [database]
        url = "sqlite:///var/lib/teleconsult/teleconsult.db"
    "#;

    fn parse(text: &str, environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let environment = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()));
        Config::parse(text, environment, Path::new("test.toml"))
    }

    #[test]
    fn audit_checkpoints_by_default_and_syslog_when_configured() {
        let config = parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.audit.settings(), AuditSettings::default());
        let off = parse(
            MINIMAL,
            &[("TELECONSULT_AUDIT__CHECKPOINT_INTERVAL_SECS", "0")],
        )
        .unwrap();
        assert_eq!(off.audit.settings().checkpoint_interval, None);

        let text = format!(
            "{MINIMAL}\n[audit.syslog]\naddress = \"arr.example.org:6514\"\nca = \"arr-ca.pem\"\n"
        );
        let config = parse(&text, &[])
            .unwrap()
            .resolve_paths(Path::new("/etc/teleconsult"));
        let syslog = config.audit.settings().syslog.unwrap();
        assert_eq!(syslog.server_name, "arr.example.org");
        assert_eq!(syslog.ca, Path::new("/etc/teleconsult/arr-ca.pem"));
        assert_eq!(
            (syslog.app_name.as_str(), syslog.client_identity),
            ("teleconsult", None)
        );

        let moved = parse(
            &text,
            &[("TELECONSULT_AUDIT__SYSLOG__ADDRESS", "[::1]:6514")],
        )
        .unwrap();
        assert_eq!(moved.audit.settings().syslog.unwrap().server_name, "::1");
        let error = parse(&format!("{text}client_cert = \"me.pem\"\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("client_key"), "{error}");
        let error = parse(&format!("{text}port = 1\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("port"), "{error}");
        // An address alone is not a repository: its CA is missing.
        let error = parse(
            MINIMAL,
            &[("TELECONSULT_AUDIT__SYSLOG__ADDRESS", "arr:6514")],
        )
        .unwrap_err();
        assert!(error.to_string().contains("`ca`"), "{error}");
        let error = parse(&text, &[("TELECONSULT_AUDIT__SYSLOG__ADDRESS", "arr")]).unwrap_err();
        assert!(error.to_string().contains("host:port"), "{error}");
    }
}
