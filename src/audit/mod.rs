//! The audit log: what was done, by whom, to what, with what outcome. Records are
//! chained by SHA-256 so that any change to a stored record is detectable.

pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod syslog;

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::domain::directory::User;
use crate::domain::principal::Principal;

pub use chain::{ChainVerifier, GENESIS_HASH, VerifyReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Denied,
    Invalid,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::Error => "error",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "ok" => Ok(Outcome::Ok),
            "denied" => Ok(Outcome::Denied),
            "invalid" => Ok(Outcome::Invalid),
            "error" => Ok(Outcome::Error),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted. For an authenticated caller this is their principal; for a refused
/// connection it is what the certificate claimed (marked as such in the details); for
/// the command line it is the local operator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub user: String,
    pub institution: String,
    pub role: String,
    pub certificate_fingerprint: String,
}

impl Actor {
    /// An operator acting through the `teleconsult` command on the broker's host.
    pub fn local_operator() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        Self {
            user: format!("cli:{user}"),
            institution: crate::domain::ids::InstitutionId::PLATFORM.to_owned(),
            role: "operator".to_owned(),
            certificate_fingerprint: String::new(),
        }
    }
}

impl Actor {
    /// The broker itself, e.g. its scheduler escalating an unanswered request.
    pub fn system(component: &str) -> Self {
        Self {
            user: format!("system:{component}"),
            institution: crate::domain::ids::InstitutionId::PLATFORM.to_owned(),
            role: "system".to_owned(),
            certificate_fingerprint: String::new(),
        }
    }
}

impl From<&User> for Actor {
    /// A directory user before (or without) a verified certificate: no fingerprint.
    fn from(user: &User) -> Self {
        Self {
            user: user.id.to_string(),
            institution: user.institution.to_string(),
            role: user.role.to_string(),
            certificate_fingerprint: String::new(),
        }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        Self {
            user: principal.user.to_string(),
            institution: principal.institution.to_string(),
            role: principal.role.to_string(),
            certificate_fingerprint: principal.certificate_fingerprint.clone(),
        }
    }
}

/// An audit record before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// Dotted name, e.g. `directory.create_user`.
    pub action: String,
    /// e.g. `user:zju2-cardio-chen`.
    pub target: String,
    /// The institution the target belongs to, when it belongs to one.
    pub target_institution: Option<String>,
    pub outcome: Outcome,
    /// A JSON object, serialised with sorted keys.
    pub details: String,
}

impl AuditEntry {
    pub fn new(actor: Actor, action: &str, target: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            at: now_micros(),
            actor,
            action: action.to_owned(),
            target: target.into(),
            target_institution: None,
            outcome,
            details: "{}".to_owned(),
        }
    }

    pub fn target_institution(mut self, institution: impl fmt::Display) -> Self {
        self.target_institution = Some(institution.to_string());
        self
    }

    /// Adds details from a JSON object, keeping those set before under other keys (the
    /// gate notes a console call's session first); `serde_json` sorts object keys,
    /// which keeps the stored text canonical.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        use serde_json::Value;
        let details = match (serde_json::from_str(&self.details), details) {
            (Ok(Value::Object(mut before)), Value::Object(added)) => {
                before.extend(added);
                Value::Object(before)
            }
            (_, details) => details,
        };
        self.details = details.to_string();
        self
    }
}

/// The current time, truncated to microseconds: the precision both stores keep, so
/// that a record hashes the same before and after it is stored.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("truncating nanoseconds stays in range")
}

/// Microseconds since the Unix epoch, the unit of the stores' timestamps.
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// A stored audit record: an entry with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1 for the first record, then consecutive.
    pub seq: u64,
    pub entry: AuditEntry,
    /// The previous record's hash (lowercase hex), or [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical encoding of `seq` and `entry`.
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn details_add_to_what_was_set_before() {
        let entry = AuditEntry::new(Actor::system("test"), "test.act", "-", Outcome::Ok)
            .details(json!({ "session": "ab12", "reason": "first" }))
            .details(json!({ "reason": "second", "version": 3 }));
        assert_eq!(
            entry.details,
            r#"{"reason":"second","session":"ab12","version":3}"#
        );
        // Something other than an object replaces what was there.
        let entry = entry.details(json!("plain"));
        assert_eq!(entry.details, r#""plain""#);
    }
}
