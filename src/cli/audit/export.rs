//! `teleconsult audit export`: the broker's export stream, written as it arrives.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use teleconsult::proto::v1 as pb;

use super::query::FilterArgs;
use crate::cli::client::ConnectionArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One audit record per line, with the protobuf message's field names.
    Jsonl,
    /// One FHIR R4 AuditEvent resource per line (NDJSON).
    Fhir,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// Write here instead of to stdout; the file appears only once the export is
    /// complete.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn run(arguments: ExportArgs) -> anyhow::Result<ExitCode> {
    let mut broker = arguments.connection.connect().await?;
    let format = match arguments.format {
        Format::Jsonl => pb::export_audit_request::Format::Jsonl,
        Format::Fhir => pb::export_audit_request::Format::FhirNdjson,
    };
    let request = pb::ExportAuditRequest {
        filter: Some(arguments.filter.request()),
        format: format as i32,
    };
    let mut stream = broker.audit.export(request).await?.into_inner();
    // A partial export must not look like a complete one: write beside the file and
    // rename it into place at the end.
    let partial = arguments.output.as_ref().map(|path| {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        path.with_file_name(name)
    });
    let mut sink: Box<dyn Write> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut lines = 0usize;
    let mut head = None;
    let written: anyhow::Result<()> = async {
        while let Some(chunk) = stream.message().await? {
            lines += chunk.data.iter().filter(|&&b| b == b'\n').count();
            write(&mut sink, &chunk.data)?;
            if !chunk.head_hash.is_empty() {
                head = Some((chunk.head_seq, chunk.head_hash));
            }
        }
        sink.flush().or_else(quiet_on_broken_pipe)?;
        Ok(())
    }
    .await;
    drop(sink);
    if let Err(error) = written {
        if let Some(path) = &partial {
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    let Some((head_seq, head_hash)) = head else {
        if let Some(path) = &partial {
            let _ = std::fs::remove_file(path);
        }
        anyhow::bail!("the export ended without naming the chain's head: it is incomplete");
    };
    let destination = match (&partial, &arguments.output) {
        (Some(partial), Some(output)) => {
            std::fs::rename(partial, output)
                .with_context(|| format!("moving the export to {}", output.display()))?;
            output.display().to_string()
        }
        _ => "stdout".to_owned(),
    };
    eprintln!("exported {lines} records to {destination}");
    eprintln!("chain head when the export began: record {head_seq}, hash {head_hash}");
    eprintln!(
        "(check it later: teleconsult audit verify --remote --to-seq {head_seq} names the \
         same hash while the log is intact)"
    );
    Ok(ExitCode::SUCCESS)
}

fn write(sink: &mut dyn Write, data: &[u8]) -> anyhow::Result<()> {
    sink.write_all(data).or_else(quiet_on_broken_pipe)?;
    Ok(())
}

/// When the reader of stdout has gone (`… | head`), stop quietly.
fn quiet_on_broken_pipe(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Err(error)
}
