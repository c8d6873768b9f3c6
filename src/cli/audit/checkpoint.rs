//! `audit verify` on the broker's host also holds the latest signed checkpoint against
//! the log: a chain cut short (or cut and written again) after the checkpoint, or a
//! checkpoint the broker's key did not sign, fails the verification.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use teleconsult::audit::checkpoint::{CheckpointReport, CheckpointVerifier};
use teleconsult::auth::pki::PkiDirectory;
use teleconsult::config::Config;
use teleconsult::store::{Store, check_latest_checkpoint};
use time::format_description::well_known::Rfc3339;

use super::super::DatabaseArgs;

/// What the latest checkpoint showed; `None` when there is none yet.
pub struct CheckpointFinding(Option<CheckpointReport>);

impl CheckpointFinding {
    pub fn is_intact(&self) -> bool {
        self.0.as_ref().is_none_or(CheckpointReport::is_intact)
    }

    pub fn to_json(&self) -> Value {
        match &self.0 {
            None => Value::Null,
            Some(report) => json!({
                "seq": report.checkpoint.seq,
                "hash": report.checkpoint.hash,
                "signed_at": report.checkpoint.at.format(&Rfc3339).ok(),
                "key_fingerprint": report.checkpoint.key_fingerprint,
                "intact": report.is_intact(),
                "problems": report.problems(),
            }),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        match &self.0 {
            None => vec!["no signed checkpoint yet: a cut tail would not show".to_owned()],
            Some(report) if report.is_intact() => {
                let checkpoint = &report.checkpoint;
                vec![format!(
                    "latest checkpoint intact: record {} signed at {} by key {}",
                    checkpoint.seq,
                    checkpoint.at.format(&Rfc3339).unwrap_or_default(),
                    checkpoint.key_fingerprint
                )]
            }
            Some(report) => report
                .problems()
                .into_iter()
                .map(|problem| format!("audit log BROKEN: {problem}"))
                .collect(),
        }
    }
}

/// Checks the latest checkpoint, its signature with `server_cert` or the certificate
/// the database options lead to.
pub async fn check(
    store: &dyn Store,
    database: &DatabaseArgs,
    server_cert: Option<&Path>,
) -> anyhow::Result<CheckpointFinding> {
    if store.latest_checkpoint().await?.is_none() {
        return Ok(CheckpointFinding(None));
    }
    let verifier = match server_certificate(database, server_cert)? {
        Some(path) => Some(CheckpointVerifier::load(&path)?),
        None => None,
    };
    Ok(CheckpointFinding(
        check_latest_checkpoint(store, verifier.as_ref()).await?,
    ))
}

/// `--server-cert`, else `tls.server_cert` of `--config`, else the development data
/// directory's certificate if there is one.
fn server_certificate(
    database: &DatabaseArgs,
    given: Option<&Path>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = given {
        return Ok(Some(path.to_owned()));
    }
    if let Some(path) = &database.config {
        let base = path.parent().unwrap_or(Path::new("."));
        return Ok(Some(
            Config::load(path)?.resolve_paths(base).tls.server_cert,
        ));
    }
    let development = PkiDirectory::new(database.data_dir.join("pki")).server_cert();
    Ok(development.exists().then_some(development))
}
