//! `teleconsult opinion`: file, sign and read the written opinion, and check a signed
//! one against the audit chain without trusting the broker's word for it.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use teleconsult::audit::chain::record_hash;
use teleconsult::audit::{Actor, AuditEntry, AuditRecord, Outcome};
use teleconsult::domain::consultation::ConsultationId;
use teleconsult::domain::ids::UserId;
use teleconsult::domain::opinion::{OpinionContent, OpinionReport};
use teleconsult::proto::v1 as pb;

use super::client::{ConnectionArgs, finish, out, print_json};
use super::local_time::{display_timestamp, from_timestamp};
use super::views;

#[derive(Debug, Subcommand)]
pub enum OpinionCommand {
    /// File (or rewrite) the draft opinion on a consultation you were assigned.
    File {
        id: String,
        /// Diagnostic impression.
        #[arg(long)]
        diagnosis: String,
        #[arg(long)]
        recommendations: String,
        #[arg(long)]
        follow_up: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Sign the latest draft: it becomes immutable and its hash enters the audit chain.
    Sign {
        id: String,
        /// The version you reviewed; refused if a newer draft exists.
        #[arg(long, default_value_t = 0)]
        version: u32,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Show the latest signed opinion, or a given version.
    Show {
        id: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
        /// Recompute the content hash from the report and check it against the audit
        /// record that sealed it; exit 1 unless everything matches.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn run(command: OpinionCommand) -> ExitCode {
    finish(dispatch(command).await)
}

async fn dispatch(command: OpinionCommand) -> anyhow::Result<ExitCode> {
    match command {
        OpinionCommand::File {
            id,
            diagnosis,
            recommendations,
            follow_up,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::FileOpinionRequest {
                consultation_id: id,
                diagnosis_impression: diagnosis,
                recommendations,
                follow_up: follow_up.unwrap_or_default(),
            };
            let report = broker.scheduling.file_opinion(request).await?.into_inner();
            if broker.json {
                print_json(&views::opinion(&report));
            } else {
                out!(
                    "filed draft version {} of the opinion on {}; sign it with \
                     `teleconsult opinion sign {} --version {}`",
                    report.version,
                    report.consultation_id,
                    report.consultation_id,
                    report.version
                );
                print_report(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        OpinionCommand::Sign {
            id,
            version,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::SignOpinionRequest {
                consultation_id: id,
                version,
            };
            let report = broker.scheduling.sign_opinion(request).await?.into_inner();
            if broker.json {
                print_json(&views::opinion(&report));
            } else {
                out!(
                    "signed version {} of the opinion on {}",
                    report.version,
                    report.consultation_id
                );
                print_report(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        OpinionCommand::Show {
            id,
            version,
            verify,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::GetOpinionRequest {
                consultation_id: id,
                version,
            };
            let report = broker.scheduling.get_opinion(request).await?.into_inner();
            let problems = if verify { check(&report) } else { Vec::new() };
            if broker.json {
                if verify {
                    print_json(&json!({
                        "opinion": views::opinion(&report),
                        "verified": problems.is_empty(),
                        "problems": problems,
                    }));
                } else {
                    print_json(&views::opinion(&report));
                }
            } else {
                print_report(&report);
                if verify {
                    print_verdict(&report, &problems);
                }
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn print_report(report: &pb::OpinionReport) {
    let status = if report.signed {
        format!("SIGNED {}", display_timestamp(report.signed_at.as_ref()))
    } else {
        "DRAFT (unsigned)".to_owned()
    };
    out!(
        "opinion on {} version {}  {status}",
        report.consultation_id,
        report.version
    );
    let field = |label: &str, value: &str| {
        if !value.is_empty() {
            out!("  {label:<16} {value}");
        }
    };
    field("author", &report.author_id);
    field("written", &display_timestamp(report.created_at.as_ref()));
    if report.supersedes_version > 0 {
        field(
            "corrects",
            &format!("version {}", report.supersedes_version),
        );
    }
    field("diagnosis", &report.diagnosis_impression);
    field("recommendations", &report.recommendations);
    field("follow-up", &report.follow_up);
    field("content hash", &report.content_hash);
    if let Some(seal) = &report.seal {
        field(
            "sealed in",
            &format!("audit record {} (hash {})", seal.seq, seal.hash),
        );
    }
}

fn print_verdict(report: &pb::OpinionReport, problems: &[String]) {
    if problems.is_empty() {
        let seq = report.seal.as_ref().map(|s| s.seq).unwrap_or_default();
        out!(
            "VERIFIED: the report's content hashes to {}, audit record {seq} carries that \
             hash, and the record's own hash recomputes",
            report.content_hash
        );
        out!(
            "  (whether record {seq} still sits in an unbroken chain is what \
             `teleconsult audit verify` checks)"
        );
    } else {
        out!("NOT VERIFIED:");
        for problem in problems {
            out!("  - {problem}");
        }
    }
}

/// Everything that does not add up, from the returned fields alone: the content hash
/// recomputed with the domain's canonical encoding, the seal record naming it, and the
/// seal record's own hash.
pub fn check(report: &pb::OpinionReport) -> Vec<String> {
    let mut problems = Vec::new();
    if !report.signed || report.content_hash.is_empty() {
        problems.push(format!(
            "version {} is not signed: only a signed opinion is sealed in the audit chain",
            report.version
        ));
        return problems;
    }
    match recompute_hash(report) {
        Ok(hash) if hash == report.content_hash => {}
        Ok(hash) => problems.push(format!(
            "content hash: the broker says {}, but the report's content hashes to {hash}",
            report.content_hash
        )),
        Err(problem) => problems.push(problem),
    }
    let Some(seal) = &report.seal else {
        problems.push("the broker sent no seal record".to_owned());
        return problems;
    };
    let details: serde_json::Value = serde_json::from_str(&seal.details).unwrap_or_default();
    if details["content_hash"].as_str() != Some(report.content_hash.as_str()) {
        problems.push(format!(
            "audit record {} does not carry the content hash {}",
            seal.seq, report.content_hash
        ));
    }
    let expected_target = format!("consultation:{}", report.consultation_id);
    if seal.target != expected_target || details["version"].as_u64() != Some(report.version.into())
    {
        problems.push(format!(
            "audit record {} seals {} version {}, not this opinion",
            seal.seq, seal.target, details["version"]
        ));
    }
    match to_audit_record(seal) {
        Ok(record) => {
            let recomputed = record_hash(&record.prev_hash, record.seq, &record.entry);
            if recomputed != record.hash {
                problems.push(format!(
                    "audit record {}: its content hashes to {recomputed}, not to its recorded hash {}",
                    seal.seq, seal.hash
                ));
            }
        }
        Err(problem) => problems.push(format!("audit record {}: {problem}", seal.seq)),
    }
    problems
}

/// The content hash of the report as the domain computes it when signing.
fn recompute_hash(report: &pb::OpinionReport) -> Result<String, String> {
    let consultation = ConsultationId::parse(&report.consultation_id)
        .map_err(|e| format!("consultation_id: {e}"))?;
    let author = UserId::parse(&report.author_id).map_err(|e| format!("author_id: {e}"))?;
    let content = OpinionContent::new(
        &report.diagnosis_impression,
        &report.recommendations,
        &report.follow_up,
    )
    .map_err(|(which, e)| format!("{which}: {e}"))?;
    // The domain trims text; a field that is not returned exactly as it was signed must
    // not pass for the signed one.
    let exact = content.diagnosis_impression.as_str() == report.diagnosis_impression
        && content.recommendations.as_str() == report.recommendations
        && content.follow_up.as_str() == report.follow_up;
    if !exact {
        return Err("the report's text is not in the form the broker signs".to_owned());
    }
    let created_at = report
        .created_at
        .as_ref()
        .ok_or("created_at is missing")
        .and_then(|t| from_timestamp(t).map_err(|_| "created_at is out of range"))?;
    let signed_at = report
        .signed_at
        .as_ref()
        .map(from_timestamp)
        .transpose()
        .map_err(|_| "signed_at is out of range".to_owned())?;
    let rebuilt = OpinionReport {
        consultation,
        version: report.version,
        content,
        author,
        supersedes: (report.supersedes_version != 0).then_some(report.supersedes_version),
        created_at,
        signed_at,
    };
    Ok(rebuilt.content_hash())
}

/// The wire form of an audit record back in the form the chain hashes.
fn to_audit_record(record: &pb::AuditRecord) -> Result<AuditRecord, String> {
    let at = record
        .at
        .as_ref()
        .ok_or("its time is missing")
        .and_then(|t| from_timestamp(t).map_err(|_| "its time is out of range"))?;
    let outcome = match pb::Outcome::try_from(record.outcome) {
        Ok(pb::Outcome::Ok) => Outcome::Ok,
        Ok(pb::Outcome::Denied) => Outcome::Denied,
        Ok(pb::Outcome::Invalid) => Outcome::Invalid,
        Ok(pb::Outcome::Error) => Outcome::Error,
        _ => return Err(format!("unknown outcome {}", record.outcome)),
    };
    Ok(AuditRecord {
        seq: record.seq,
        entry: AuditEntry {
            at,
            actor: Actor {
                user: record.actor_user_id.clone(),
                institution: record.actor_institution_id.clone(),
                role: record.actor_role.clone(),
                certificate_fingerprint: record.actor_certificate_fingerprint.clone(),
            },
            action: record.action.clone(),
            target: record.target.clone(),
            target_institution: (!record.target_institution_id.is_empty())
                .then(|| record.target_institution_id.clone()),
            outcome,
            details: record.details.clone(),
        },
        prev_hash: record.prev_hash.clone(),
        hash: record.hash.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use teleconsult::api::convert::scheduling::opinion_to_proto;
    use teleconsult::audit::chain::seal;
    use teleconsult::store::StoredOpinion;
    use time::macros::datetime;

    use super::*;

    /// A signed opinion as the broker returns it, sealed in audit record 2.
    fn signed() -> pb::OpinionReport {
        let content = OpinionContent::new("HAPE, resolving", "descend; nifedipine", "").unwrap();
        let draft = OpinionReport::draft(
            ConsultationId::from_random([7; 10]),
            &[],
            content,
            UserId::parse("zju2-cardio-chen").unwrap(),
            datetime!(2026-12-01 02:00 UTC),
        );
        let report = draft.sign(datetime!(2026-12-01 02:10 UTC)).unwrap();
        let hash = report.content_hash();
        let entry = |details: serde_json::Value| {
            AuditEntry::new(
                Actor::system("test"),
                "scheduling.sign_opinion",
                format!("consultation:{}", report.consultation),
                Outcome::Ok,
            )
            .target_institution("biru-county-hospital")
            .details(details)
        };
        let first = seal(None, entry(json!({})));
        let record = seal(
            Some((first.seq, &first.hash)),
            entry(json!({ "content_hash": hash, "version": 1 })),
        );
        let stored = StoredOpinion {
            report,
            seal: Some((hash, record.seq)),
        };
        opinion_to_proto(&stored, Some(&record))
    }

    #[test]
    fn an_untouched_opinion_verifies() {
        assert_eq!(check(&signed()), Vec::<String>::new());
    }

    #[test]
    fn changed_content_or_seal_is_named() {
        let mut report = signed();
        report.recommendations = "stay at altitude".into();
        assert!(
            check(&report)[0].starts_with("content hash:"),
            "{:?}",
            check(&report)
        );

        let mut report = signed();
        report.seal.as_mut().unwrap().actor_user_id = "someone-else".into();
        let problems = check(&report);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("not to its recorded hash"));

        let mut report = signed();
        report.signed = false;
        assert!(check(&report)[0].contains("not signed"));
    }
}
