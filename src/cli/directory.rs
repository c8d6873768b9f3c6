//! `teleconsult directory`: load a directory file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::directory_file;

use super::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Insert or update the institutions, users and specialists of a directory file
    /// (see deploy/directory.example.toml), in one transaction.
    Import {
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: DirectoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        DirectoryCommand::Import { file, database } => {
            let seed = directory_file::load(&file)?;
            let store = database.open().await?;
            let audit = AuditEntry::new(
                Actor::local_operator(),
                "directory.import",
                format!("file:{}", file.display()),
                Outcome::Ok,
            )
            .details(json!({
                "institutions": seed.institutions.len(),
                "users": seed.users.len(),
                "specialists": seed.specialists.len(),
            }));
            let summary = store
                .import_directory(&seed, audit)
                .await
                .context("importing the directory")?;
            println!(
                "imported {} institutions, {} users, {} specialists from {}",
                summary.institutions,
                summary.users,
                summary.specialists,
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
