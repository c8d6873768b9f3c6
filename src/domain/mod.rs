//! Pure types and rules of the broker: identifiers, the directory, principals and the
//! authorization policy. Nothing here performs IO or knows about gRPC, SQL or TLS.

pub mod account;
pub mod consultation;
pub mod directory;
pub mod ids;
pub mod opinion;
pub mod policy;
pub mod principal;
pub mod schedule;
pub mod session;

use std::fmt;

/// Why a value was rejected, without saying which field it came from; the conversion
/// layer attaches the field name (see [`InvalidField`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue(pub String);

impl InvalidValue {
    pub fn new(problem: impl Into<String>) -> Self {
        Self(problem.into())
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rejected input value together with the name of the field that carried it, e.g.
/// `user.id: must be 1 to 64 characters`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            problem: problem.to_string(),
        }
    }
}

/// `result.map_err(field("user.id"))` names the field a parse failure came from.
pub fn field<E: fmt::Display>(name: &str) -> impl FnOnce(E) -> InvalidField + '_ {
    move |problem| InvalidField::new(name, problem)
}

/// Checks a free-text value: trimmed, non-empty unless `optional`, at most `max` characters,
/// no control characters other than newlines and tabs.
pub fn text(value: &str, max: usize, optional: bool) -> Result<String, InvalidValue> {
    let value = value.trim();
    if value.is_empty() && !optional {
        return Err(InvalidValue::new("must not be empty"));
    }
    if value.chars().count() > max {
        return Err(InvalidValue(format!("must be at most {max} characters")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidValue::new("must not contain control characters"));
    }
    Ok(value.to_owned())
}
