//! `Export` as JSON Lines: the records parse back into exactly what the same query
//! returns, in chunks of which the last names the chain's head when the export began.
//! (FHIR AuditEvent exports are checked in `fhir.rs`.)

use serde_json::Value;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::export_audit_request::Format;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Client, audit_as, history, walk};
use crate::directory::audit_head;
use crate::helpers::TestApp;
use crate::scheduling::{BIRU_ADMIN, PLATFORM_ADMIN};

on_both_backends!(a_jsonl_export_is_what_the_same_query_returns);

/// What an export delivered: its lines, its chunks and the head its last chunk named.
pub struct Exported {
    pub lines: Vec<Value>,
    pub chunks: usize,
    pub head_seq: u64,
    pub head_hash: String,
}

pub async fn export(
    client: &mut Client,
    filter: pb::QueryAuditRequest,
    format: Format,
) -> Exported {
    let mut stream = client
        .export(pb::ExportAuditRequest {
            filter: Some(filter),
            format: format as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    let (last, earlier) = chunks.split_last().expect("at least one chunk");
    assert!(
        earlier
            .iter()
            .all(|c| c.head_hash.is_empty() && c.head_seq == 0),
        "only the last chunk names the head"
    );
    assert_eq!(last.head_hash.len(), 64, "the last chunk names the head");
    let data: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
    let text = String::from_utf8(data).expect("exports are UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'));
    let lines = text
        .lines()
        .map(|line| {
            assert!(!line.trim().is_empty(), "no blank lines");
            let value: Value = serde_json::from_str(line).expect("each line is one JSON value");
            assert!(value.is_object(), "each line is one object: {line}");
            value
        })
        .collect();
    Exported {
        lines,
        chunks: chunks.len(),
        head_seq: last.head_seq,
        head_hash: last.head_hash.clone(),
    }
}

fn outcome_name(outcome: i32) -> &'static str {
    match pb::Outcome::try_from(outcome) {
        Ok(pb::Outcome::Ok) => "ok",
        Ok(pb::Outcome::Denied) => "denied",
        Ok(pb::Outcome::Invalid) => "invalid",
        Ok(pb::Outcome::Error) => "error",
        _ => "?",
    }
}

fn micros(at: &prost_types::Timestamp) -> i128 {
    i128::from(at.seconds) * 1_000_000 + i128::from(at.nanos) / 1_000
}

/// A JSON Lines record parsed back must be the queried record, field by field.
#[track_caller]
fn assert_line_is(line: &Value, record: &pb::AuditRecord) {
    let at = OffsetDateTime::parse(line["at"].as_str().expect("at is a string"), &Rfc3339)
        .expect("at is RFC 3339");
    // `details` is the stored JSON text; accept it embedded as an object too.
    let details = match &line["details"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let text = |key: &str| line[key].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        (
            (line["seq"].as_u64(), at.unix_timestamp_nanos() / 1_000),
            text("actor_user_id"),
            text("actor_institution_id"),
            text("actor_role"),
            text("actor_certificate_fingerprint"),
            text("action"),
            text("target"),
            text("target_institution_id"),
            text("outcome"),
            details,
            text("prev_hash"),
            text("hash"),
        ),
        (
            (Some(record.seq), micros(record.at.as_ref().unwrap())),
            record.actor_user_id.clone(),
            record.actor_institution_id.clone(),
            record.actor_role.clone(),
            record.actor_certificate_fingerprint.clone(),
            record.action.clone(),
            record.target.clone(),
            record.target_institution_id.clone(),
            outcome_name(record.outcome).to_owned(),
            record.details.clone(),
            record.prev_hash.clone(),
            record.hash.clone(),
        ),
        "{line}"
    );
}

/// Enough records that an export takes more than one chunk.
async fn bulk(app: &TestApp, n: usize) {
    for i in 0..n {
        let mut entry = AuditEntry::new(
            Actor::system("test"),
            "test.bulk",
            format!("user:bulk-{i}"),
            Outcome::Ok,
        );
        if i % 2 == 0 {
            entry = entry.target_institution("biru-county-hospital");
        }
        app.store.append_audit(entry).await.unwrap();
    }
}

async fn a_jsonl_export_is_what_the_same_query_returns(app: TestApp) {
    history(&app).await;
    bulk(&app, 520).await;

    for (user, filter) in [
        (PLATFORM_ADMIN, pb::QueryAuditRequest::default()),
        (
            BIRU_ADMIN,
            pb::QueryAuditRequest {
                newest_first: true,
                ..Default::default()
            },
        ),
        (
            PLATFORM_ADMIN,
            pb::QueryAuditRequest {
                action: "directory.create_user".into(),
                ..Default::default()
            },
        ),
    ] {
        let mut client = audit_as(&app, user);
        let head = audit_head(&app).await;
        let exported = export(&mut client, filter.clone(), Format::Jsonl).await;
        assert_eq!(exported.head_seq, head, "the head when the export began");
        let stored_head = app.store.audit_record(head).await.unwrap().unwrap();
        assert_eq!(exported.head_hash, stored_head.hash);
        // The export itself is the next record, saying what was taken.
        let recorded = app.store.audit_record(head + 1).await.unwrap().unwrap();
        assert_eq!(recorded.entry.action, "audit.export");
        assert_eq!(recorded.entry.actor.user, user);
        let details: Value = serde_json::from_str(&recorded.entry.details).unwrap();
        assert_eq!(details["format"], "jsonl", "{details}");
        assert_eq!(details["up_to_seq"], head, "{details}");
        assert_eq!(details["newest_first"], filter.newest_first, "{details}");

        let queried: Vec<pb::AuditRecord> = walk(&mut client, filter.clone(), 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.seq <= exported.head_seq)
            .collect();
        assert!(!queried.is_empty());
        assert_eq!(exported.lines.len(), queried.len(), "{user}: {filter:?}");
        for (line, record) in exported.lines.iter().zip(&queried) {
            assert_line_is(line, record);
        }
        if user == PLATFORM_ADMIN && filter.action.is_empty() {
            assert!(exported.chunks > 1, "{} records in chunks", queried.len());
        }

        // A later verification reaches at least as far, and agrees on the head.
        let mut verifier = audit_as(&app, PLATFORM_ADMIN);
        let later = verifier
            .verify(pb::VerifyAuditRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(
            later.intact && later.head_seq >= exported.head_seq,
            "{later:?}"
        );
        let up_to = verifier
            .verify(pb::VerifyAuditRequest {
                from_seq: 0,
                to_seq: exported.head_seq,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (up_to.intact, up_to.head_seq, up_to.head_hash.as_str()),
            (true, exported.head_seq, exported.head_hash.as_str())
        );
    }
    app.stop().await;
}
