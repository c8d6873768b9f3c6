//! `teleconsult audit`: read and check the audit log. `verify` recomputes the hash
//! chain from the database on the broker's host, or asks the broker to (`--remote`);
//! `query`, `timeline` and `export` ask the broker, as an administrator.

mod checkpoint;
mod export;
mod query;
mod summary;
mod timeline;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use teleconsult::proto::v1 as pb;

use super::DatabaseArgs;
use super::client::{ConnectionArgs, finish, out, print_json};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records matching a filter, oldest first, as a table or JSON (client; admins).
    Query(query::QueryArgs),
    /// Everything recorded about one consultation, in order: booking history,
    /// consent, session joins and leaves, ICE and quality, the opinion's seal (client;
    /// admins of either institution).
    Timeline(timeline::TimelineArgs),
    /// Stream a filtered range as JSON Lines or FHIR R4 AuditEvent NDJSON; the chain's
    /// head at the start of the export goes to stderr (client; admins).
    Export(export::ExportArgs),
    /// Recompute the hash chain and name the first record that does not match: from
    /// the database, or through the broker with --remote.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Ask the broker to verify (as an admin, see the connection options) instead of
    /// reading the database; the database options are then not used.
    #[arg(long)]
    remote: bool,
    /// With --remote: start at this record, trusting the hash of the one before.
    #[arg(long, value_name = "SEQ", requires = "remote")]
    from_seq: Option<u64>,
    /// With --remote: stop after this record.
    #[arg(long, value_name = "SEQ", requires = "remote")]
    to_seq: Option<u64>,
    /// The broker's certificate, to check the latest audit checkpoint's signature
    /// with; by default `tls.server_cert` of --config, or the development data
    /// directory's `pki/server.pem`.
    #[arg(long, value_name = "PEM", conflicts_with = "remote")]
    server_cert: Option<std::path::PathBuf>,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Query(arguments) => Ok(finish(query::run(arguments).await)),
        AuditCommand::Timeline(arguments) => Ok(finish(timeline::run(arguments).await)),
        AuditCommand::Export(arguments) => Ok(finish(export::run(arguments).await)),
        AuditCommand::Verify(arguments) if arguments.remote => {
            Ok(finish(verify_remote(arguments).await))
        }
        AuditCommand::Verify(arguments) => verify_local(arguments).await,
    }
}

/// What either verification found, printed the same way.
struct Verdict {
    records_checked: u64,
    head: Option<(u64, String)>,
    first_bad: Option<(u64, String)>,
    /// The latest signed checkpoint held against the log (local verification only).
    checkpoint: Option<checkpoint::CheckpointFinding>,
}

impl Verdict {
    fn print(&self, json: bool, verifier: &str) -> ExitCode {
        let (head_seq, head_hash) = self.head.clone().unwrap_or_default();
        let (first_bad_seq, problem) = self.first_bad.clone().unwrap_or_default();
        let intact = self.first_bad.is_none()
            && self
                .checkpoint
                .as_ref()
                .is_none_or(checkpoint::CheckpointFinding::is_intact);
        if json {
            let mut verdict = json!({
                "intact": intact,
                "records_checked": self.records_checked,
                "head_seq": head_seq,
                "head_hash": head_hash,
                "first_bad_seq": first_bad_seq,
                "problem": problem,
                "verified_by": verifier,
            });
            if let Some(checkpoint) = &self.checkpoint {
                verdict["checkpoint"] = checkpoint.to_json();
            }
            print_json(&verdict);
        } else {
            let head = match &self.head {
                Some((seq, hash)) => format!("head record {seq}, hash {hash}"),
                None => "no intact records".to_owned(),
            };
            match &self.first_bad {
                None => out!(
                    "audit chain intact: {} records checked; {head}",
                    self.records_checked
                ),
                Some((seq, problem)) => {
                    out!("audit chain BROKEN at record {seq}: {problem}");
                    out!("last intact: {head}");
                }
            }
            for line in self.checkpoint.iter().flat_map(|c| c.lines()) {
                out!("{line}");
            }
        }
        if intact {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

async fn verify_local(arguments: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = arguments.database.open_existing().await?;
    let report = store.verify_audit().await?;
    let checkpoint = checkpoint::check(
        store.as_ref(),
        &arguments.database,
        arguments.server_cert.as_deref(),
    )
    .await?;
    let verdict = Verdict {
        records_checked: report.records_checked,
        head: report.head,
        first_bad: report.first_bad,
        checkpoint: Some(checkpoint),
    };
    Ok(verdict.print(arguments.connection.json, "database"))
}

async fn verify_remote(arguments: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut broker = arguments.connection.connect().await?;
    let request = pb::VerifyAuditRequest {
        from_seq: arguments.from_seq.unwrap_or(0),
        to_seq: arguments.to_seq.unwrap_or(0),
    };
    let answer = broker.audit.verify(request).await?.into_inner();
    let verdict = Verdict {
        records_checked: answer.records_checked,
        head: (answer.head_seq > 0).then(|| (answer.head_seq, answer.head_hash.clone())),
        first_bad: (!answer.intact).then(|| (answer.first_bad_seq, answer.problem.clone())),
        checkpoint: None,
    };
    Ok(verdict.print(broker.json, "broker"))
}
