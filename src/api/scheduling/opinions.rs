//! The written opinion: drafts, signing, corrections and verification.

use serde_json::json;
use tonic::{Request, Response, Status};

use super::{Scheduling, consultation_target, load_authorized};
use crate::api::convert::scheduling::{consultation_id, opinion_to_proto};
use crate::api::error::ApiError;
use crate::api::gate::AuditTarget;
use crate::audit::now_micros;
use crate::domain::consultation::{ConsultationState, Event};
use crate::domain::opinion::{OpinionContent, OpinionReport};
use crate::domain::policy::Action;
use crate::events::NoticeKind;
use crate::proto::v1 as pb;

type Answer<T> = Result<Response<T>, Status>;

impl Scheduling {
    pub(super) async fn file_opinion(
        &self,
        request: Request<pb::FileOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        let call = self.gate.admit(&request, Action::FileOpinion).await?;
        let request = request.into_inner();
        let parsed = consultation_id(&request.consultation_id, "consultation_id")
            .and_then(|id| Ok((id, OpinionContent::try_from(&request)?)));
        let (id, content) = call.check(parsed, &AuditTarget::unknown()).await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        if !matches!(
            consultation.state,
            ConsultationState::InSession
                | ConsultationState::AwaitingReport
                | ConsultationState::Completed
        ) {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "consultation is {}; an opinion is filed once the session has taken place",
                        consultation.state
                    )),
                    &target,
                )
                .await);
        }
        let existing = call.check(self.store.opinions(&id).await, &target).await?;
        let reports: Vec<_> = existing.iter().map(|o| o.report.clone()).collect();
        let draft = OpinionReport::draft(
            id,
            &reports,
            content,
            call.principal.user.clone(),
            now_micros(),
        );
        let audit = call.audit(&target).details(json!({
            "version": draft.version,
            "supersedes": draft.supersedes,
            "draft_hash": draft.content_hash(),
        }));
        call.check(self.store.save_opinion_draft(&draft, audit).await, &target)
            .await?;
        let stored = crate::store::StoredOpinion {
            report: draft,
            seal: None,
        };
        Ok(Response::new(opinion_to_proto(&stored, None)))
    }

    pub(super) async fn sign_opinion(
        &self,
        request: Request<pb::SignOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        let call = self.gate.admit(&request, Action::SignOpinion).await?;
        let request = request.into_inner();
        let id = call
            .check(
                consultation_id(&request.consultation_id, "consultation_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let existing = call.check(self.store.opinions(&id).await, &target).await?;
        let latest = existing.last().map(|o| &o.report);
        let draft = match latest {
            None => Err(ApiError::FailedPrecondition(
                "no opinion has been filed".into(),
            )),
            Some(latest) if request.version != 0 && request.version != latest.version => {
                Err(ApiError::FailedPrecondition(format!(
                    "version: the latest version is {}; only it can be signed",
                    latest.version
                )))
            }
            Some(latest) => Ok(latest),
        };
        let draft = call.check(draft, &target).await?;
        let signed = call.check(draft.sign(now_micros()), &target).await?;
        let next = match consultation.state {
            ConsultationState::AwaitingReport => Some(
                call.check(consultation.apply(Event::ReportSigned), &target)
                    .await?,
            ),
            ConsultationState::Completed => None,
            state => {
                return Err(call
                    .refuse(
                        ApiError::FailedPrecondition(format!(
                            "consultation is {state}; an opinion is signed once the session has ended"
                        )),
                        &target,
                    )
                    .await);
            }
        };
        let content_hash = signed.content_hash();
        let audit = call.audit(&target).details(json!({
            "version": signed.version,
            "supersedes": signed.supersedes,
            "content_hash": content_hash,
            "from": consultation.state.as_str(),
            "to": next.as_ref().map(|c| c.state.as_str()).unwrap_or(consultation.state.as_str()),
        }));
        let sealed = call
            .check(
                self.store
                    .sign_opinion(&signed, &content_hash, next.as_ref(), audit)
                    .await,
                &target,
            )
            .await?;
        if let Some(next) = &next {
            self.events.publish(NoticeKind::Changed, next);
        }
        let seal = call
            .check(self.store.audit_record(sealed.audit_seq).await, &target)
            .await?;
        let stored = crate::store::StoredOpinion {
            report: sealed.report,
            seal: Some((sealed.content_hash, sealed.audit_seq)),
        };
        Ok(Response::new(opinion_to_proto(&stored, seal.as_ref())))
    }

    pub(super) async fn get_opinion(
        &self,
        request: Request<pb::GetOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        let call = self.gate.admit(&request, Action::GetOpinion).await?;
        let request = request.into_inner();
        let id = call
            .check(
                consultation_id(&request.consultation_id, "consultation_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let opinions = call.check(self.store.opinions(&id).await, &target).await?;
        // Drafts are the author's until signed; everyone else sees signed versions.
        let visible = |o: &&crate::store::StoredOpinion| {
            o.seal.is_some() || o.report.author == call.principal.user
        };
        let found = if request.version == 0 {
            opinions.iter().rev().find(|o| o.seal.is_some())
        } else {
            opinions
                .iter()
                .find(|o| o.report.version == request.version)
                .filter(visible)
        };
        let found = call
            .check(
                found.ok_or_else(|| {
                    ApiError::NotFound(match request.version {
                        0 => format!("consultation {id} has no signed opinion yet"),
                        v => format!("version {v} of the opinion on {id} not found"),
                    })
                }),
                &target,
            )
            .await?;
        let seal = match &found.seal {
            Some((_, seq)) => {
                call.check(self.store.audit_record(*seq).await, &target)
                    .await?
            }
            None => None,
        };
        Ok(Response::new(opinion_to_proto(found, seal.as_ref())))
    }
}
