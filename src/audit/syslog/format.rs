//! The messages: each audit record as an RFC 5424 syslog message, framed for TLS
//! transport by RFC 5425's octet counting.

use time::UtcOffset;
use time::macros::format_description;

use crate::audit::{AuditRecord, Outcome, export};

/// The SD-ID of the record's place in the chain. 32473 is the enterprise number
/// RFC 5612 reserves for examples; a deployment with its own can change it here.
pub const SD_ID: &str = "teleconsult@32473";

/// Facility 10, security/authorization, as ITI-20 requires.
const FACILITY: u8 = 10;

/// The fields every message shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
}

/// RFC 5424 header fields are printable US-ASCII without spaces, `-` when empty.
fn header_field(value: &str, max: usize) -> String {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

/// Escapes `"`, `\` and `]` in a structured-data parameter value.
fn sd_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// One record as an RFC 5424 message: severity notice for what succeeded, warning for
/// the rest (as ITI-20 suggests); MSGID the action; structured data the record's place
/// in the chain; the message the record as JSON (as in a JSON Lines export), UTF-8
/// with a BOM.
pub fn format_message(record: &AuditRecord, origin: &Origin) -> String {
    let severity = if record.entry.outcome == Outcome::Ok {
        5
    } else {
        4
    };
    let timestamp = record
        .entry
        .at
        .to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .unwrap_or_else(|_| "-".to_owned());
    format!(
        "<{pri}>1 {timestamp} {host} {app} {procid} {msgid} [{SD_ID} seq=\"{seq}\" hash=\"{hash}\" prev=\"{prev}\"] \u{feff}{body}",
        pri = FACILITY * 8 + severity,
        host = header_field(&origin.hostname, 255),
        app = header_field(&origin.app_name, 48),
        procid = header_field(&origin.procid, 128),
        msgid = header_field(&record.entry.action, 32),
        seq = record.seq,
        hash = sd_value(&record.hash),
        prev = sd_value(&record.prev_hash),
        body = export::json_line(record),
    )
}

/// RFC 5425 framing: the message's length in octets, a space, the message.
pub fn frame(message: &str) -> Vec<u8> {
    let mut framed = format!("{} ", message.len()).into_bytes();
    framed.extend_from_slice(message.as_bytes());
    framed
}

/// The host name the kernel knows this machine by, for HOSTNAME.
pub(super) fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditEntry, chain};

    #[test]
    fn a_record_becomes_one_framed_rfc5424_message() {
        let mut entry = AuditEntry::new(
            Actor::system("test"),
            "directory.create_user",
            "user:x",
            Outcome::Denied,
        );
        entry.at = time::macros::datetime!(2026-03-01 04:05:06.000789 UTC);
        let record = chain::seal(None, entry);
        let origin = Origin {
            hostname: "broker 1".into(),
            app_name: String::new(),
            procid: "42".into(),
        };
        let message = format_message(&record, &origin);
        let expected = format!(
            "<84>1 2026-03-01T04:05:06.000789Z broker1 - 42 directory.create_user [teleconsult@32473 seq=\"1\" hash=\"{}\" prev=\"{}\"] \u{feff}",
            record.hash, record.prev_hash
        );
        assert!(message.starts_with(&expected), "{message}");
        let body: serde_json::Value = serde_json::from_str(&message[expected.len()..]).unwrap();
        assert_eq!(body, export::json_line(&record));
        let framed = frame(&message);
        let (length, rest) = std::str::from_utf8(&framed)
            .unwrap()
            .split_once(' ')
            .unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), rest.len());
    }

    #[test]
    fn structured_data_values_are_escaped() {
        assert_eq!(sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("", 8), "-");
        assert_eq!(header_field("abcdefghij", 4), "abcd");
    }
}
