//! `teleconsult audit timeline CONSULTATION`: a consultation's story from the log.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use teleconsult::proto::v1 as pb;

use super::summary::{actor, local_seconds, outcome, summary};
use crate::cli::client::{ConnectionArgs, out, print_json, print_table};
use crate::cli::views;

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The consultation's id.
    consultation: String,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn run(arguments: TimelineArgs) -> anyhow::Result<ExitCode> {
    let mut broker = arguments.connection.connect().await?;
    let request = pb::TimelineRequest {
        consultation_id: arguments.consultation.clone(),
    };
    let records = broker.audit.timeline(request).await?.into_inner().records;
    if broker.json {
        print_json(&json!({
            "consultation_id": arguments.consultation,
            "records": records.iter().map(views::audit_record).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "consultation {}: {} audit records, oldest first",
        arguments.consultation,
        records.len()
    );
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            vec![
                local_seconds(record.at.as_ref()),
                record.seq.to_string(),
                actor(record),
                record.action.clone(),
                outcome(record.outcome),
                summary(record),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME (UTC+8)",
            "SEQ",
            "ACTOR",
            "ACTION",
            "OUTCOME",
            "SUMMARY",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
