//! `AuditService`: what administrators read of the audit log — queries, a
//! consultation's timeline, exports (JSON Lines, FHIR AuditEvent) and verification of
//! the chain. Institution admins see their institution's records; platform admins all.

use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::audit::query as parse_query;
use super::convert::scheduling::{audit_record_to_proto, consultation_id};
use super::error::ApiError;
use super::gate::{AuditTarget, Call, Gate};
use super::scheduling::{consultation_target, load_authorized};
use crate::audit::{ChainVerifier, export};
use crate::domain::directory::PageSize;
use crate::domain::ids::InstitutionId;
use crate::domain::policy::{Action, Target};
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_server::AuditService;
use crate::store::{AuditQuery, SharedStore};

/// Records per export chunk.
const EXPORT_CHUNK: u32 = 500;
/// How the broker names itself as the observer in FHIR AuditEvents.
const OBSERVER: &str = "teleconsult broker";

/// At most this many records in one timeline (about 30 hours of a six-person session
/// at the default quality interval).
const MAX_TIMELINE: usize = 20_000;

pub struct Audit {
    gate: Gate,
    store: SharedStore,
}

impl Audit {
    pub fn new(gate: Gate) -> Self {
        Self {
            store: gate.store().clone(),
            gate,
        }
    }
}

type ExportStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

fn audit_target(query: &AuditQuery) -> AuditTarget {
    AuditTarget {
        label: "audit".to_owned(),
        institution: query
            .institution
            .as_deref()
            .and_then(|i| InstitutionId::parse(i).ok()),
    }
}

impl Audit {
    /// Parses a query and scopes it to what the caller may see: an institution admin
    /// who names no institution gets their own.
    async fn scoped(
        &self,
        call: &Call,
        request: &pb::QueryAuditRequest,
        prefix: &str,
    ) -> Result<AuditQuery, Status> {
        let mut query = call
            .check(parse_query(request, prefix), &AuditTarget::unknown())
            .await?;
        if query.institution.is_none() && !call.principal.is_platform_admin() {
            query.institution = Some(call.principal.institution.to_string());
        }
        let target = audit_target(&query);
        let institution = query
            .institution
            .as_deref()
            .and_then(|i| InstitutionId::parse(i).ok());
        let policy_target = Target {
            institution,
            ..Target::none()
        };
        call.authorize(&policy_target, &target).await?;
        Ok(query)
    }

    /// Reading the audit log is itself recorded: who looked at what.
    async fn record_read(
        &self,
        call: &Call,
        target: &AuditTarget,
        query: &AuditQuery,
        read: serde_json::Value,
    ) {
        let filter = json!({
            "institution": query.institution,
            "user": query.user,
            "role": query.role,
            "target": query.target,
            "action": query.action,
            "outcome": query.outcome.map(|o| o.as_str()),
        });
        let entry = call.audit(target).details(filter).details(read);
        if let Err(error) = self.store.append_audit(entry).await {
            tracing::error!(%error, "could not record an audit read");
        }
    }
}

#[tonic::async_trait]
impl AuditService for Audit {
    async fn query(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let call = self.gate.admit(&request, Action::QueryAudit).await?;
        let query = self.scoped(&call, request.get_ref(), "").await?;
        let target = audit_target(&query);
        let records = call
            .check(self.store.query_audit(&query).await, &target)
            .await?;
        let next_page_token = match records.last() {
            Some(last) if records.len() == query.limit.get() as usize => last.seq.to_string(),
            _ => String::new(),
        };
        self.record_read(&call, &target, &query, json!({ "records": records.len() }))
            .await;
        Ok(Response::new(pb::QueryAuditResponse {
            records: records.iter().map(audit_record_to_proto).collect(),
            next_page_token,
        }))
    }

    /// Everything recorded about one consultation, oldest first: booking history,
    /// consent, session joins and leaves, ICE states, quality summaries, the opinion's
    /// seal.
    async fn timeline(
        &self,
        request: Request<pb::TimelineRequest>,
    ) -> Result<Response<pb::TimelineResponse>, Status> {
        let call = self.gate.admit(&request, Action::AuditTimeline).await?;
        let id = call
            .check(
                consultation_id(&request.get_ref().consultation_id, "consultation_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let mut query = AuditQuery {
            target: Some(target.label.clone()),
            limit: PageSize::new(PageSize::MAX),
            ..AuditQuery::default()
        };
        let mut records = Vec::new();
        loop {
            let page = call
                .check(self.store.query_audit(&query).await, &target)
                .await?;
            let full = page.len() == query.limit.get() as usize;
            query.after_seq = page.last().map(|r| r.seq);
            records.extend(page);
            if !full || records.len() >= MAX_TIMELINE {
                break;
            }
        }
        Ok(Response::new(pb::TimelineResponse {
            records: records.iter().map(audit_record_to_proto).collect(),
        }))
    }

    type ExportStream = ExportStream;

    /// The records a filter selects, as JSON Lines or FHIR AuditEvent NDJSON, in
    /// chunks; the last chunk names the chain's head when the export began, so that a
    /// recipient can later check it against a verification.
    async fn export(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        use pb::export_audit_request::Format;
        let call = self.gate.admit(&request, Action::ExportAudit).await?;
        let format = match Format::try_from(request.get_ref().format) {
            Ok(Format::Jsonl) => Ok(Format::Jsonl),
            Ok(Format::FhirNdjson) => Ok(Format::FhirNdjson),
            _ => Err(crate::domain::InvalidField::new(
                "format",
                "must be FORMAT_JSONL or FORMAT_FHIR_NDJSON",
            )),
        };
        let format = call.check(format, &AuditTarget::unknown()).await?;
        let filter = request.get_ref().filter.clone().unwrap_or_default();
        let mut query = self.scoped(&call, &filter, "filter.").await?;
        let target = audit_target(&query);
        let head = call
            .check(
                self.store
                    .query_audit(&AuditQuery {
                        newest_first: true,
                        limit: PageSize::new(1),
                        ..AuditQuery::default()
                    })
                    .await,
                &target,
            )
            .await?
            .pop();
        let (head_seq, head_hash) = head
            .map(|r| (r.seq, r.hash))
            .unwrap_or((0, crate::audit::GENESIS_HASH.to_owned()));
        // Recorded before the first chunk leaves: what was asked for and up to which
        // record; the stream itself is the rest.
        let read = json!({
            "format": match format {
                Format::Jsonl => "jsonl",
                _ => "fhir_ndjson",
            },
            "up_to_seq": head_seq,
            "newest_first": query.newest_first,
        });
        self.record_read(&call, &target, &query, read).await;
        query.limit = PageSize::new(EXPORT_CHUNK);
        if query.newest_first && query.after_seq.is_none() {
            query.after_seq = Some(head_seq + 1);
        }
        let store = self.store.clone();
        let (chunks, stream) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let page = match store.query_audit(&query).await {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = chunks.send(Err(Status::from(ApiError::from(error)))).await;
                        return;
                    }
                };
                let full = page.len() == EXPORT_CHUNK as usize;
                query.after_seq = page.last().map(|r| r.seq);
                let mut data = Vec::new();
                // Records appended after the export began are not part of it.
                for record in page.iter().filter(|r| r.seq <= head_seq) {
                    let line = match format {
                        Format::FhirNdjson => export::fhir_audit_event(record, OBSERVER),
                        _ => export::json_line(record),
                    };
                    data.extend_from_slice(line.to_string().as_bytes());
                    data.push(b'\n');
                }
                let done =
                    !full || page.last().is_some_and(|r| r.seq >= head_seq) && !query.newest_first;
                let chunk = pb::ExportChunk {
                    data,
                    head_hash: if done {
                        head_hash.clone()
                    } else {
                        String::new()
                    },
                    head_seq: if done { head_seq } else { 0 },
                };
                if chunks.send(Ok(chunk)).await.is_err() || done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    /// Recomputes the chain over a range (or all of it) and names the first record that
    /// does not fit.
    async fn verify(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let call = self.gate.admit(&request, Action::VerifyAudit).await?;
        let target = AuditTarget::new("audit", None);
        call.authorize(&Target::none(), &target).await?;
        let range = request.get_ref();
        let (from, to) = (range.from_seq.max(1), range.to_seq);
        if to != 0 && to < from {
            return Err(call
                .refuse(
                    crate::domain::InvalidField::new("to_seq", "must not be before from_seq"),
                    &target,
                )
                .await);
        }
        let mut verifier = if from > 1 {
            let previous = call
                .check(self.store.audit_record(from - 1).await, &target)
                .await?;
            let previous = call
                .check(
                    previous.ok_or_else(|| {
                        ApiError::NotFound(format!("audit record {} not found", from - 1))
                    }),
                    &target,
                )
                .await?;
            ChainVerifier::after(previous.seq, previous.hash)
        } else {
            ChainVerifier::from_start()
        };
        let mut after = from - 1;
        'pages: loop {
            let page = call
                .check(self.store.audit_records(after, 1_000).await, &target)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                if to != 0 && record.seq > to {
                    break 'pages;
                }
                if !verifier.check(record) {
                    break 'pages;
                }
            }
        }
        let report = verifier.finish();
        let (head_seq, head_hash) = report.head.clone().unwrap_or((0, String::new()));
        let (first_bad_seq, problem) = report.first_bad.clone().unwrap_or((0, String::new()));
        Ok(Response::new(pb::VerifyAuditResponse {
            intact: report.is_intact(),
            records_checked: report.records_checked,
            head_hash,
            head_seq,
            first_bad_seq,
            problem,
        }))
    }
}
