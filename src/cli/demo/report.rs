//! What the demo shows at the end: the packets each participant received through the
//! SFU, and the consultation's audit trail read back from the database with the chain
//! verified.

use std::sync::atomic::Ordering;

use serde_json::Value;
use teleconsult::audit::{AuditRecord, Outcome};
use teleconsult::domain::schedule::SHANGHAI;
use teleconsult::relay::synthetic::SyntheticParticipant;
use teleconsult::store::SharedStore;
use time::macros::format_description;

use super::super::client::{out, print_table};

/// Packets one participant sent and received, by publisher.
pub struct ParticipantMedia {
    pub user: String,
    pub sent_audio: u64,
    pub sent_video: u64,
    /// `(publisher, audio packets, video packets)`, one per other participant.
    pub received: Vec<(String, u64, u64)>,
}

/// What every participant of the session sent and received.
pub struct MediaReport {
    pub participants: Vec<ParticipantMedia>,
}

impl MediaReport {
    pub fn snapshot(peers: &[&SyntheticParticipant]) -> Self {
        let participants = peers
            .iter()
            .map(|receiver| ParticipantMedia {
                user: receiver.user.clone(),
                sent_audio: receiver.sent_audio.load(Ordering::Relaxed),
                sent_video: receiver.sent_video.load(Ordering::Relaxed),
                received: peers
                    .iter()
                    .filter(|sender| sender.user != receiver.user)
                    .map(|sender| {
                        (
                            sender.user.clone(),
                            receiver.received_from(&sender.user, "audio"),
                            receiver.received_from(&sender.user, "video"),
                        )
                    })
                    .collect(),
            })
            .collect();
        MediaReport { participants }
    }

    /// `biru-nurse-dawa received no video from zju2-cardio-chen`, for every such pair.
    pub fn silent_pairs(&self) -> Vec<String> {
        let mut silent = Vec::new();
        for participant in &self.participants {
            for (from, audio, video) in &participant.received {
                for (kind, packets) in [("audio", audio), ("video", video)] {
                    if *packets == 0 {
                        silent.push(format!(
                            "{} received no {kind} from {from}",
                            participant.user
                        ));
                    }
                }
            }
        }
        silent
    }

    pub fn print(&self) {
        out!("Relay statistics: RTP packets through the broker's SFU, counted by each participant");
        let rows: Vec<[String; 5]> = self
            .participants
            .iter()
            .flat_map(|participant| {
                participant
                    .received
                    .iter()
                    .enumerate()
                    .map(move |(index, (from, audio, video))| {
                        let (user, sent) = if index == 0 {
                            (
                                participant.user.clone(),
                                format!("{} / {}", participant.sent_audio, participant.sent_video),
                            )
                        } else {
                            (String::new(), String::new())
                        };
                        [
                            user,
                            sent,
                            from.clone(),
                            audio.to_string(),
                            video.to_string(),
                        ]
                    })
            })
            .collect();
        let headers = [
            "participant",
            "sent audio / video",
            "received from",
            "audio",
            "video",
        ];
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |cells: [&str; 5]| {
            out!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            )
        };
        line(headers);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        out!();
    }
}

/// Prints the records whose target is the consultation, then verifies the whole chain.
/// Returns whether it is intact.
pub async fn audit_trail(store: &SharedStore, consultation: &str) -> anyhow::Result<bool> {
    let target = format!("consultation:{consultation}");
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut total = 0;
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        total += page.len();
        records.extend(page.into_iter().filter(|r| r.entry.target == target));
    }
    let date = records.first().map(local_date).unwrap_or_default();
    out!("Audit trail of consultation {consultation}, read back from the database:");
    out!(
        "{} of the log's {total} records; times in Asia/Shanghai on {date}",
        records.len()
    );
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            let entry = &record.entry;
            let local = entry.at.to_offset(SHANGHAI);
            let mut at = local
                .format(format_description!(
                    "[hour]:[minute]:[second].[subsecond digits:3]"
                ))
                .unwrap_or_default();
            if local_date(record) != date {
                at = format!("{} {at}", local_date(record));
            }
            vec![
                record.seq.to_string(),
                at,
                entry.actor.user.clone(),
                entry.action.clone(),
                entry.outcome.to_string(),
                detail(&entry.details),
            ]
        })
        .collect();
    print_table(
        &["seq", "time", "actor", "action", "outcome", "detail"],
        &rows,
    );
    if records.iter().any(|r| r.entry.outcome != Outcome::Ok) {
        out!("  (records not ok are refusals the broker recorded)");
    }
    out!();

    let report = store.verify_audit().await?;
    let head = report
        .head
        .as_ref()
        .map(|(seq, hash)| format!("head record {seq}, hash {hash}"))
        .unwrap_or_else(|| "no records".to_owned());
    match &report.first_bad {
        None => {
            out!(
                "audit chain verified: {} records intact; {head}",
                report.records_checked
            );
            Ok(true)
        }
        Some((seq, problem)) => {
            out!("audit chain BROKEN at record {seq}: {problem}; last intact: {head}");
            Ok(false)
        }
    }
}

fn local_date(record: &AuditRecord) -> String {
    record
        .entry
        .at
        .to_offset(SHANGHAI)
        .format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// Keys worth reading first in a record's details; the rest follow alphabetically.
const LEADING_KEYS: [&str; 10] = [
    "participant",
    "invitee",
    "state",
    "role",
    "consenter",
    "method",
    "doctor",
    "window",
    "reason",
    "content_hash",
];
/// Keys that say nothing to a reader of the trail.
const SKIPPED_KEYS: [&str; 2] = ["version", "supersedes"];
const DETAIL_WIDTH: usize = 80;

/// A short line for a record's details: what changed, who joined, what was measured.
fn detail(details: &str) -> String {
    let Ok(Value::Object(details)) = serde_json::from_str::<Value>(details) else {
        return String::new();
    };
    if let Some(quality) = details.get("quality") {
        return quality_line(quality, details.get("final") == Some(&Value::Bool(true)));
    }
    let mut parts: Vec<String> = Vec::new();
    if let (Some(from), Some(to)) = (details.get("from"), details.get("to")) {
        parts.push(format!("{} → {}", scalar(from), scalar(to)));
    }
    let mut keys: Vec<&String> = details
        .iter()
        .filter(|(key, value)| {
            !matches!(
                value,
                Value::Object(_) | Value::Array(_) | Value::Null | Value::Bool(false)
            ) && !SKIPPED_KEYS.contains(&key.as_str())
                && !(parts.len() == 1 && (*key == "from" || *key == "to"))
        })
        .map(|(key, _)| key)
        .collect();
    keys.sort_by_key(|key| {
        LEADING_KEYS
            .iter()
            .position(|leading| leading == key)
            .unwrap_or(LEADING_KEYS.len())
    });
    for key in keys {
        let mut value = scalar(&details[key.as_str()]);
        if key.ends_with("hash") && value.len() > 16 {
            value = format!("{}…", &value[..16]);
        }
        parts.push(format!("{key}={value}"));
    }
    let line = parts.join(", ");
    match line.char_indices().nth(DETAIL_WIDTH) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// `biru-nurse-dawa: SFU got 740 pkts, sent 1244, lost 0, rtt 0.0 ms (final)`.
fn quality_line(quality: &Value, last: bool) -> String {
    let participant = quality.get("participant").map(scalar).unwrap_or_default();
    let streams = |key: &str| -> Vec<Value> {
        quality
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let sum = |key: &str, field: &str| -> u64 {
        streams(key)
            .iter()
            .filter_map(|s| s.get(field).and_then(Value::as_u64))
            .sum()
    };
    let lost = sum("received_from_participant", "packets_lost")
        + sum("as_seen_by_participant", "packets_lost");
    let round_trip = streams("as_seen_by_participant")
        .iter()
        .filter_map(|s| s.get("round_trip_time_s").and_then(Value::as_f64))
        .fold(None, |max: Option<f64>, rtt| {
            Some(max.map_or(rtt, |m| m.max(rtt)))
        });
    let mut line = format!(
        "{participant}: SFU got {} pkts, sent {}, lost {lost}",
        sum("received_from_participant", "packets"),
        sum("sent_to_participant", "packets"),
    );
    if let Some(round_trip) = round_trip {
        line.push_str(&format!(", rtt {:.1} ms", round_trip * 1000.0));
    }
    if last {
        line.push_str(" (final)");
    }
    line
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
