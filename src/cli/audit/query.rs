//! `teleconsult audit query`, and the filter it shares with `audit export`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;
use teleconsult::proto::v1 as pb;
use time::OffsetDateTime;

use super::summary::{actor, local_seconds, outcome, summary};
use crate::cli::client::{ConnectionArgs, out, print_json, print_table};
use crate::cli::local_time::{LOCAL_FORMAT, local_time_arg, to_timestamp};
use crate::cli::views;

/// The most records the broker gives in one page.
const PAGE_MAX: u32 = 500;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutcomeArg {
    Ok,
    Denied,
    Invalid,
    Error,
}

impl From<OutcomeArg> for pb::Outcome {
    fn from(outcome: OutcomeArg) -> Self {
        match outcome {
            OutcomeArg::Ok => pb::Outcome::Ok,
            OutcomeArg::Denied => pb::Outcome::Denied,
            OutcomeArg::Invalid => pb::Outcome::Invalid,
            OutcomeArg::Error => pb::Outcome::Error,
        }
    }
}

/// Which records: every given condition must hold. An institution admin sees only
/// records whose actor or target belongs to their institution.
#[derive(Debug, Args)]
#[command(next_help_heading = "Filter")]
pub struct FilterArgs {
    /// Records at or after this time.
    #[arg(long, value_name = LOCAL_FORMAT, value_parser = local_time_arg)]
    from: Option<OffsetDateTime>,
    /// Records before this time.
    #[arg(long, value_name = LOCAL_FORMAT, value_parser = local_time_arg)]
    to: Option<OffsetDateTime>,
    /// Records whose actor or target belongs to this institution (an institution
    /// admin's own by default).
    #[arg(long)]
    institution: Option<String>,
    /// Records of what this user did.
    #[arg(long)]
    user: Option<String>,
    /// Records of what users in this role did: clinic_staff, doctor, interpreter, admin.
    #[arg(long)]
    role: Option<String>,
    /// Records about this consultation.
    #[arg(long)]
    consultation: Option<String>,
    /// Records of this action, e.g. scheduling.book_consultation.
    #[arg(long)]
    action: Option<String>,
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Newest first instead of oldest first.
    #[arg(long)]
    newest_first: bool,
}

impl FilterArgs {
    pub fn request(&self) -> pb::QueryAuditRequest {
        pb::QueryAuditRequest {
            from: self.from.map(to_timestamp),
            to: self.to.map(to_timestamp),
            institution_id: self.institution.clone().unwrap_or_default(),
            user_id: self.user.clone().unwrap_or_default(),
            role: self.role.clone().unwrap_or_default(),
            consultation_id: self.consultation.clone().unwrap_or_default(),
            action: self.action.clone().unwrap_or_default(),
            outcome: self
                .outcome
                .map(|o| pb::Outcome::from(o) as i32)
                .unwrap_or_default(),
            newest_first: self.newest_first,
            page: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many records, over as many pages as it takes; 0 for all.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn run(arguments: QueryArgs) -> anyhow::Result<ExitCode> {
    let mut broker = arguments.connection.connect().await?;
    let mut request = arguments.filter.request();
    let limit = match arguments.limit {
        0 => usize::MAX,
        n => n as usize,
    };
    let mut records = Vec::new();
    let mut next_page_token = String::new();
    while records.len() < limit {
        let wanted = (limit - records.len()).min(PAGE_MAX as usize) as u32;
        request.page = Some(pb::PageRequest {
            page_size: wanted,
            page_token: next_page_token,
        });
        let page = broker.audit.query(request.clone()).await?.into_inner();
        records.extend(page.records);
        next_page_token = page.next_page_token;
        if next_page_token.is_empty() {
            break;
        }
    }
    if broker.json {
        print_json(&json!({
            "records": records.iter().map(views::audit_record).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        out!("no audit records match");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            vec![
                record.seq.to_string(),
                local_seconds(record.at.as_ref()),
                actor(record),
                record.action.clone(),
                record.target.clone(),
                outcome(record.outcome),
                summary(record),
            ]
        })
        .collect();
    print_table(
        &[
            "SEQ",
            "TIME (UTC+8)",
            "ACTOR",
            "ACTION",
            "TARGET",
            "OUTCOME",
            "SUMMARY",
        ],
        &rows,
    );
    if !next_page_token.is_empty() {
        eprintln!(
            "(the first {} records; more may match: raise --limit, or 0 for all)",
            records.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
