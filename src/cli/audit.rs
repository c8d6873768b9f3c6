//! `teleconsult audit`: verify the hash chain.

use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and name the first record that does not match.
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { database } => {
            let store = database.open_existing().await?;
            let report = store.verify_audit().await?;
            let head = report
                .head
                .as_ref()
                .map(|(seq, hash)| format!("head record {seq}, hash {hash}"))
                .unwrap_or_else(|| "no intact records".to_owned());
            match &report.first_bad {
                None => {
                    println!(
                        "audit chain intact: {} records checked; {head}",
                        report.records_checked
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some((seq, problem)) => {
                    println!("audit chain BROKEN at record {seq}: {problem}");
                    println!("last intact: {head}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
