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
    pub lockout_minutes: u32,
    /// Serve the console from this directory instead of the copy in the binary.
    pub assets_dir: Option<PathBuf>,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        let policy = SignInPolicy::default();
        Self {
            listen: None,
            session_key: PathBuf::from("console-session.key"),
            session_hours: policy.session_lifetime.whole_hours() as u32,
            max_failed_sign_ins: policy.max_failures,
            lockout_minutes: policy.lockout.whole_minutes() as u32,
            assets_dir: None,
        }
    }
}

impl ConsoleSection {
    pub fn policy(&self) -> SignInPolicy {
        SignInPolicy {
            max_failures: self.max_failed_sign_ins,
            lockout: time::Duration::minutes(i64::from(self.lockout_minutes)),
            session_lifetime: time::Duration::hours(i64::from(self.session_hours)),
            ..SignInPolicy::default()
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        if let Some(dir) = &mut self.assets_dir {
            resolve(dir);
        }
    }
}
