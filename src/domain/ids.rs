//! Identifiers. Each is a newtype that can only hold a valid value.

use std::fmt;

use super::InvalidValue;

/// Lowercase ASCII letters, digits, '-', '_' and '.', starting with a letter or digit,
/// 1 to 64 characters. Ids appear in certificates (CN, O), URLs and audit records, so
/// they are kept to a set that needs no escaping anywhere.
fn parse_slug(value: &str) -> Result<String, InvalidValue> {
    if value.is_empty() || value.len() > 64 {
        return Err(InvalidValue::new("must be 1 to 64 characters"));
    }
    let first = value.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(InvalidValue::new(
            "must start with a lowercase letter or a digit",
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err(InvalidValue::new(
            "may contain only lowercase letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(value.to_owned())
}

macro_rules! slug_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                parse_slug(value).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

slug_id!(
    /// A user: the CN of their client certificates, e.g. `zju2-cardio-chen`.
    UserId
);
slug_id!(
    /// An institution: the O of its members' certificates, e.g. `biru-county-hospital`.
    InstitutionId
);
slug_id!(
    /// A medical specialty code, e.g. `cardiology`, `high-altitude-medicine`.
    Specialty
);

impl InstitutionId {
    /// The broker operator; its admins administer every institution.
    pub const PLATFORM: &'static str = "platform";

    pub fn is_platform(&self) -> bool {
        self.0 == Self::PLATFORM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        for id in ["zju2-cardio-chen", "platform", "nagqu.peoples", "a", "0day"] {
            assert!(UserId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_what_needs_escaping() {
        for id in [
            "",
            "Upper",
            "-lead",
            "with space",
            "ü",
            "a/b",
            "a,b",
            &"x".repeat(65),
        ] {
            assert!(UserId::parse(id).is_err(), "{id:?}");
        }
    }
}
