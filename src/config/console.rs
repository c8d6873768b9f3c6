//! `[console]`: the web console's HTTPS port and its password sign-in.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::account::SignInPolicy;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Where the console is served (HTTPS); without it there is no console.
    pub listen: Option<SocketAddr>,
    /// The key that signs session cookies (hex, 32 bytes or more), made on first start
    /// if missing. Nodes of one deployment must share it.
    pub session_key: PathBuf,
    /// How long a browser session lasts after sign-in.
    pub session_hours: u32,
    /// Consecutive failed sign-ins that lock an account.
    pub max_failed_sign_ins: u32,
    /// Failed sign-ins from one address (to any accounts) that hold it back for the
    /// rest of the lockout window; 0 turns this off.
    pub max_failed_sign_ins_per_address: u32,
    pub lockout_minutes: u32,
    /// Serve the console from this directory instead of the copy in the binary.
    pub assets_dir: Option<PathBuf>,
    /// A certificate (PEM chain) and key for the console that browsers trust, e.g. from
    /// the hospital's or a public CA; without them the console uses [tls] server_cert.
    pub server_cert: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        let policy = SignInPolicy::default();
        Self {
            listen: None,
            session_key: PathBuf::from("console-session.key"),
            session_hours: policy.session_lifetime.whole_hours() as u32,
            max_failed_sign_ins: policy.max_failures,
            max_failed_sign_ins_per_address: policy.max_failures_per_address,
            lockout_minutes: policy.lockout.whole_minutes() as u32,
            assets_dir: None,
            server_cert: None,
            server_key: None,
        }
    }
}

impl ConsoleSection {
    pub fn policy(&self) -> SignInPolicy {
        SignInPolicy {
            max_failures: self.max_failed_sign_ins,
            max_failures_per_address: self.max_failed_sign_ins_per_address,
            lockout: time::Duration::minutes(i64::from(self.lockout_minutes)),
            session_lifetime: time::Duration::hours(i64::from(self.session_hours)),
            ..SignInPolicy::default()
        }
    }

    /// The console's own certificate and key, when both are set.
    pub fn certificate(&self) -> Option<(PathBuf, PathBuf)> {
        self.server_cert.clone().zip(self.server_key.clone())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.server_cert.is_some() != self.server_key.is_some() {
            return Err(ConfigError::Invalid(
                "console.server_cert and console.server_key go together: set both or neither"
                    .into(),
            ));
        }
        if !(1..=24).contains(&self.session_hours) {
            return Err(ConfigError::Invalid(
                "console.session_hours must be from 1 to 24".into(),
            ));
        }
        if self.max_failed_sign_ins == 0 || self.lockout_minutes == 0 {
            return Err(ConfigError::Invalid(
                "console.max_failed_sign_ins and console.lockout_minutes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        resolve(&mut self.session_key);
        for path in [
            &mut self.assets_dir,
            &mut self.server_cert,
            &mut self.server_key,
        ]
        .into_iter()
        .flatten()
        {
            resolve(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_certificate_needs_its_key() {
        let only_cert = ConsoleSection {
            server_cert: Some("web.pem".into()),
            ..ConsoleSection::default()
        };
        let error = only_cert.validate().unwrap_err().to_string();
        assert!(error.contains("console.server_key"), "{error}");
        let both = ConsoleSection {
            server_key: Some("web.key.pem".into()),
            ..only_cert
        };
        assert!(both.validate().is_ok());
        assert_eq!(
            both.certificate(),
            Some(("web.pem".into(), "web.key.pem".into()))
        );
        assert_eq!(ConsoleSection::default().certificate(), None);
    }

    #[test]
    fn sessions_last_one_to_twenty_four_hours() {
        for hours in [0, 25] {
            let section = ConsoleSection {
                session_hours: hours,
                ..ConsoleSection::default()
            };
            assert!(section.validate().is_err(), "{hours} hours");
        }
    }
}
