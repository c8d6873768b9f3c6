//! Audit records in a line a person reads: who, when (Asia/Shanghai, to the second)
//! and what the details say, e.g. a state change, a consent, or a participant's media
//! quality.

use prost_types::Timestamp;
use serde_json::{Map, Value};
use teleconsult::domain::schedule::SHANGHAI;
use teleconsult::proto::v1 as pb;
use time::macros::format_description;

use crate::cli::local_time::from_timestamp;
use crate::cli::views::short;

/// `2026-12-01 09:00:05` in Asia/Shanghai: audit times need their seconds.
pub fn local_seconds(timestamp: Option<&Timestamp>) -> String {
    match timestamp.map(from_timestamp) {
        Some(Ok(instant)) => instant
            .to_offset(SHANGHAI)
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_else(|_| "(invalid time)".to_owned()),
        Some(Err(_)) => "(invalid time)".to_owned(),
        None => "-".to_owned(),
    }
}

/// `biru-nurse-dawa (clinic_staff)`; the broker's own components as they are named.
pub fn actor(record: &pb::AuditRecord) -> String {
    if record.actor_role.is_empty() || record.actor_role == "system" {
        record.actor_user_id.clone()
    } else {
        format!("{} ({})", record.actor_user_id, record.actor_role)
    }
}

/// `ok`, `denied`, `invalid`, `error`.
pub fn outcome(value: i32) -> String {
    short(value, "OUTCOME_", pb::Outcome::as_str_name).to_ascii_lowercase()
}

/// What the record's details say, in a few words.
pub fn summary(record: &pb::AuditRecord) -> String {
    let details: Value = serde_json::from_str(&record.details).unwrap_or(Value::Null);
    let Some(details) = details.as_object() else {
        return record.details.clone();
    };
    if record.outcome != pb::Outcome::Ok as i32 {
        return match text(details, "reason") {
            Some(reason) => reason,
            None => compact(details, &[]),
        };
    }
    let verb = record.action.rsplit('.').next().unwrap_or(&record.action);
    let transition = match (text(details, "from"), text(details, "to")) {
        (Some(from), Some(to)) if from != to => Some(format!("{from} → {to}")),
        _ => None,
    };
    let mut parts: Vec<String> = Vec::new();
    let shown: &[&str] = match (record.action.as_str(), verb) {
        ("session.quality", _) => {
            let last = details.get("final").and_then(Value::as_bool) == Some(true);
            if let Some(quality) = details.get("quality") {
                let line = quality_line(quality);
                parts.push(if last { format!("final: {line}") } else { line });
            }
            &["final", "quality"]
        }
        ("session.leave", _) => {
            parts.push(match text(details, "reason") {
                Some(reason) => format!("left: {reason}"),
                None => "left".to_owned(),
            });
            if let Some(quality) = details.get("quality") {
                parts.push(quality_line(quality));
            }
            &["reason", "quality"]
        }
        ("session.join", _) => {
            let role = text(details, "role").unwrap_or_default();
            let again = details.get("reconnect").and_then(Value::as_bool) == Some(true);
            parts.push(format!(
                "joined as {role}{}",
                if again { " (reconnected)" } else { "" }
            ));
            &["role", "reconnect"]
        }
        ("audit.checkpoint", _) => {
            let key = text(details, "key_fingerprint").unwrap_or_default();
            parts.push(format!(
                "signed checkpoint of record {}, hash {}, key {}…",
                text(details, "seq").unwrap_or_default(),
                text(details, "hash").unwrap_or_default(),
                key.get(..16).unwrap_or(&key)
            ));
            &[
                "seq",
                "hash",
                "key_fingerprint",
                "signature",
                "signed_at_us",
            ]
        }
        ("session.ice_state", _) => {
            parts.push(format!(
                "{}: ICE {}",
                text(details, "participant").unwrap_or_default(),
                text(details, "state").unwrap_or_default()
            ));
            &["participant", "state"]
        }
        (_, "book_consultation") => {
            let doctor = text(details, "doctor").unwrap_or_else(|| "-".to_owned());
            let institution = text(details, "consulting_institution").unwrap_or_default();
            let mut line = format!("booked {doctor} ({institution})");
            for key in ["specialty", "window"] {
                if let Some(value) = text(details, key) {
                    line.push_str(&format!(", {value}"));
                }
            }
            if let Some(state) = text(details, "state") {
                line.push_str(&format!("; {state}"));
            }
            parts.push(line);
            &[
                "doctor",
                "consulting_institution",
                "specialty",
                "window",
                "state",
            ]
        }
        (_, "record_consent") => {
            parts.push(format!(
                "consent: {}, {}",
                text(details, "consenter").unwrap_or_default(),
                text(details, "method").unwrap_or_default()
            ));
            &["consenter", "method", "from", "to", "version"]
        }
        (_, "sign_opinion") => {
            parts.push(format!(
                "signed version {}, content hash {}",
                text(details, "version").unwrap_or_default(),
                text(details, "content_hash").unwrap_or_default()
            ));
            if let Some(transition) = &transition {
                parts.push(transition.clone());
            }
            &["version", "content_hash", "from", "to", "supersedes"]
        }
        (_, "file_opinion") => {
            parts.push(format!(
                "draft version {}, hash {}",
                text(details, "version").unwrap_or_default(),
                text(details, "draft_hash").unwrap_or_default()
            ));
            &["version", "draft_hash", "supersedes"]
        }
        (_, "invite_participant") => {
            parts.push(format!(
                "invited {} ({})",
                text(details, "invitee").unwrap_or_default(),
                text(details, "role").unwrap_or_default()
            ));
            &["invitee", "role", "from", "to", "version"]
        }
        (_, "reschedule_consultation") => {
            parts.push(format!(
                "moved from {} to {}",
                text(details, "old_window").unwrap_or_else(|| "-".to_owned()),
                text(details, "new_window").unwrap_or_else(|| "-".to_owned())
            ));
            &["old_window", "new_window", "from", "to", "version"]
        }
        _ => {
            if let Some(transition) = &transition {
                parts.push(transition.clone());
            }
            &["from", "to", "version"]
        }
    };
    let rest = compact(details, shown);
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join("; ")
}

/// A string, number or boolean field as text.
fn text(details: &Map<String, Value>, key: &str) -> Option<String> {
    match details.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The fields not already shown, as `key=value`.
fn compact(details: &Map<String, Value>, shown: &[&str]) -> String {
    details
        .iter()
        .filter(|(key, value)| !shown.contains(&key.as_str()) && !value.is_null())
        .map(|(key, value)| match value {
            Value::String(s) => format!("{key}={s}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

/// One participant's media as the relay measured it: `dawa (clinic_side): received
/// 1200 packets, 3 lost (0.2%), jitter 4.1 ms; sent 1100 packets; RTT 85 ms`.
fn quality_line(quality: &Value) -> String {
    let streams = |key: &str| {
        quality
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let sum = |streams: &[Value], key: &str| streams.iter().filter_map(|s| number(s, key)).sum();
    let max = |streams: &[Value], key: &str| {
        streams
            .iter()
            .filter_map(|s| number(s, key))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let mut line = format!(
        "{} ({})",
        quality["participant"].as_str().unwrap_or("?"),
        quality["role"].as_str().unwrap_or("?")
    );
    let received = streams("received_from_participant");
    let (packets, lost): (f64, f64) = (sum(&received, "packets"), sum(&received, "packets_lost"));
    let mut media = Vec::new();
    if !received.is_empty() {
        let expected = packets + lost.max(0.0);
        let share = if expected > 0.0 {
            100.0 * lost.max(0.0) / expected
        } else {
            0.0
        };
        let mut text = format!("received {packets} packets, {lost} lost ({share:.1}%)");
        if let Some(jitter) = max(&received, "jitter_s") {
            text.push_str(&format!(", jitter {:.1} ms", jitter * 1000.0));
        }
        media.push(text);
    }
    let sent = streams("sent_to_participant");
    if !sent.is_empty() {
        media.push(format!("sent {} packets", sum(&sent, "packets")));
    }
    let seen = streams("as_seen_by_participant");
    if let Some(rtt) = max(&seen, "round_trip_time_s") {
        media.push(format!("RTT {:.0} ms", rtt * 1000.0));
    }
    if media.is_empty() {
        line.push_str(": no media yet");
    } else {
        line.push_str(": ");
        line.push_str(&media.join("; "));
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(action: &str, outcome: pb::Outcome, details: Value) -> pb::AuditRecord {
        pb::AuditRecord {
            action: action.into(),
            outcome: outcome as i32,
            details: details.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn quality_shows_packets_loss_jitter_and_round_trip() {
        let quality = json!({
            "final": true,
            "quality": {
                "participant": "biru-nurse-dawa",
                "role": "clinic_side",
                "received_from_participant": [
                    { "kind": "audio", "packets": 990, "packets_lost": 10, "jitter_s": 0.0041 },
                    { "kind": "video", "packets": 2000, "packets_lost": 0, "jitter_s": 0.002 },
                ],
                "sent_to_participant": [{ "kind": "video", "packets": 1500 }],
                "as_seen_by_participant": [{ "round_trip_time_s": 0.085 }],
                "forwarded_to_participant": [],
            }
        });
        assert_eq!(
            summary(&record("session.quality", pb::Outcome::Ok, quality)),
            "final: biru-nurse-dawa (clinic_side): received 2990 packets, 10 lost (0.3%), \
             jitter 4.1 ms; sent 1500 packets; RTT 85 ms"
        );
    }

    #[test]
    fn transitions_consent_and_seals_read_as_sentences() {
        let accepted = json!({ "from": "requested", "to": "scheduled", "version": 2,
                               "urgency": "routine", "seconds_to_accept": 40 });
        assert_eq!(
            summary(&record(
                "scheduling.accept_consultation",
                pb::Outcome::Ok,
                accepted
            )),
            "requested → scheduled; seconds_to_accept=40, urgency=routine"
        );
        let consent = json!({ "consenter": "patient", "method": "written",
                              "from": "scheduled", "to": "scheduled", "version": 3 });
        assert_eq!(
            summary(&record(
                "scheduling.record_consent",
                pb::Outcome::Ok,
                consent
            )),
            "consent: patient, written"
        );
        let hash = "ab".repeat(32);
        let signed = json!({ "version": 1, "content_hash": hash, "supersedes": null,
                             "from": "awaiting_report", "to": "completed" });
        assert_eq!(
            summary(&record("scheduling.sign_opinion", pb::Outcome::Ok, signed)),
            format!("signed version 1, content hash {hash}; awaiting_report → completed")
        );
        let denied = json!({ "reason": "only the assigned doctor may accept" });
        assert_eq!(
            summary(&record(
                "scheduling.accept_consultation",
                pb::Outcome::Denied,
                denied
            )),
            "only the assigned doctor may accept"
        );
    }

    #[test]
    fn a_checkpoint_names_its_record_and_key() {
        let checkpoint = json!({ "seq": 22, "hash": "af2a", "key_fingerprint": "2ae80792f479c853c23c",
                                 "signature": "3046", "signed_at_us": 1 });
        assert_eq!(
            summary(&record("audit.checkpoint", pb::Outcome::Ok, checkpoint)),
            "signed checkpoint of record 22, hash af2a, key 2ae80792f479c853…"
        );
    }

    #[test]
    fn times_are_shanghai_to_the_second() {
        let at = Timestamp {
            seconds: 1_796_086_805, // 2026-12-01T01:00:05Z
            nanos: 0,
        };
        assert_eq!(local_seconds(Some(&at)), "2026-12-01 09:00:05");
    }
}
