//! `SchedulingService`: availability, booking, the consultation lifecycle, urgent
//! requests, opinions and live updates. One file per group of RPCs; this one holds
//! what they share and the trait's wiring.

mod availability;
mod consultations;
mod opinions;
mod watch;

use ring::rand::SecureRandom;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::error::ApiError;
use super::gate::{AuditTarget, Call, Gate};
use crate::domain::consultation::{Consultation, ConsultationId, Event};
use crate::domain::policy::Target;
use crate::events::{ConsultationEvents, NoticeKind};
use crate::proto::v1 as pb;
use crate::proto::v1::scheduling_service_server::SchedulingService;
use crate::store::SharedStore;

pub use watch::WatchStream;

pub struct Scheduling {
    gate: Gate,
    store: SharedStore,
    events: ConsultationEvents,
}

impl Scheduling {
    pub fn new(gate: Gate, events: ConsultationEvents) -> Self {
        Self {
            store: gate.store().clone(),
            gate,
            events,
        }
    }
}

/// A fresh consultation id from the system's random number generator.
fn new_consultation_id() -> ConsultationId {
    let mut bytes = [0u8; 10];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    ConsultationId::from_random(bytes)
}

pub fn consultation_target(consultation: &Consultation) -> AuditTarget {
    AuditTarget::new(
        format!("consultation:{}", consultation.id),
        Some(&consultation.inviting_institution),
    )
}

/// Loads the consultation `id` and checks that the caller may do `call.action` to it.
pub async fn load_authorized(
    call: &Call,
    store: &SharedStore,
    id: &ConsultationId,
) -> Result<Consultation, Status> {
    let unplaced = AuditTarget::new(format!("consultation:{id}"), None);
    let found = call.check(store.consultation(id).await, &unplaced).await?;
    let consultation = call
        .check(
            found.ok_or_else(|| ApiError::NotFound(format!("consultation {id} not found"))),
            &unplaced,
        )
        .await?;
    call.authorize(
        &Target::consultation(&consultation),
        &consultation_target(&consultation),
    )
    .await?;
    Ok(consultation)
}

impl Scheduling {
    /// Applies `event` to `consultation`, stores the result with its audit record and
    /// tells watchers.
    async fn transition(
        &self,
        call: &Call,
        consultation: &Consultation,
        event: Event,
        details: serde_json::Value,
    ) -> Result<Consultation, Status> {
        let target = consultation_target(consultation);
        let next = call.check(consultation.apply(event), &target).await?;
        let mut details = details;
        if let Some(object) = details.as_object_mut() {
            object.insert("from".into(), json!(consultation.state.as_str()));
            object.insert("to".into(), json!(next.state.as_str()));
            object.insert("version".into(), json!(next.version));
        }
        let audit = call.audit(&target).details(details);
        call.check(self.store.update_consultation(&next, audit).await, &target)
            .await?;
        self.events.publish(NoticeKind::Changed, &next);
        Ok(next)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl SchedulingService for Scheduling {
    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Answer<pb::Availability> {
        self.set_availability(request).await
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Answer<pb::Availability> {
        self.get_availability(request).await
    }

    async fn search_slots(
        &self,
        request: Request<pb::SearchSlotsRequest>,
    ) -> Answer<pb::SearchSlotsResponse> {
        self.search_slots(request).await
    }

    async fn book_consultation(
        &self,
        request: Request<pb::BookConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.book_consultation(request).await
    }

    async fn request_urgent_consultation(
        &self,
        request: Request<pb::RequestUrgentConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.request_urgent_consultation(request).await
    }

    async fn get_consultation(
        &self,
        request: Request<pb::GetConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.get_consultation(request).await
    }

    async fn list_consultations(
        &self,
        request: Request<pb::ListConsultationsRequest>,
    ) -> Answer<pb::ListConsultationsResponse> {
        self.list_consultations(request).await
    }

    async fn accept_consultation(
        &self,
        request: Request<pb::AcceptConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.accept_consultation(request).await
    }

    async fn decline_consultation(
        &self,
        request: Request<pb::DeclineConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.decline_consultation(request).await
    }

    async fn cancel_consultation(
        &self,
        request: Request<pb::CancelConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.cancel_consultation(request).await
    }

    async fn reschedule_consultation(
        &self,
        request: Request<pb::RescheduleConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        self.reschedule_consultation(request).await
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Answer<pb::Consultation> {
        self.record_consent(request).await
    }

    async fn invite_participant(
        &self,
        request: Request<pb::InviteParticipantRequest>,
    ) -> Answer<pb::Consultation> {
        self.invite_participant(request).await
    }

    async fn file_opinion(
        &self,
        request: Request<pb::FileOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        self.file_opinion(request).await
    }

    async fn sign_opinion(
        &self,
        request: Request<pb::SignOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        self.sign_opinion(request).await
    }

    async fn get_opinion(
        &self,
        request: Request<pb::GetOpinionRequest>,
    ) -> Answer<pb::OpinionReport> {
        self.get_opinion(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Answer<Self::WatchStream> {
        self.watch(request).await
    }
}
