//! Booking, urgent requests and the consultation lifecycle.

use serde_json::json;
use tonic::{Request, Response, Status};

use super::{Scheduling, consultation_target, load_authorized, new_consultation_id};
use crate::api::convert::scheduling::{
    self as convert, consultation_id, consultation_page_token, state_reason,
};
use crate::api::convert::user_id;
use crate::api::error::ApiError;
use crate::api::gate::AuditTarget;
use crate::audit::now_micros;
use crate::domain::consultation::{
    BookingRequest, ConsentRecord, Consultation, Event, UrgentRequest,
};
use crate::domain::directory::{PageSize, Role, SpecialistQuery};
use crate::domain::policy::{self, Action, Target};
use crate::events::NoticeKind;
use crate::proto::v1 as pb;
use crate::store::{ConsultationFilter, consultation_sort_key};

type Answer<T> = Result<Response<T>, Status>;

fn answer(consultation: &Consultation) -> Answer<pb::Consultation> {
    Ok(Response::new(consultation.into()))
}

impl Scheduling {
    pub(super) async fn book_consultation(
        &self,
        request: Request<pb::BookConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self.gate.admit(&request, Action::BookConsultation).await?;
        let booking = call
            .check(
                BookingRequest::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let own = call.principal.institution.clone();
        let target = AuditTarget::new(format!("user:{}", booking.doctor), Some(&own));
        call.authorize(&Target::institution(&own), &target).await?;

        let found = call
            .check(self.store.specialist(&booking.doctor).await, &target)
            .await?;
        let specialist = call
            .check(
                found.ok_or_else(|| {
                    ApiError::NotFound(format!("specialist {} not found", booking.doctor))
                }),
                &target,
            )
            .await?;
        if !specialist.profile.specialties.contains(&booking.specialty) {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "specialty: {} does not practise {}",
                        booking.doctor, booking.specialty
                    )),
                    &target,
                )
                .await);
        }
        let availability = call
            .check(self.store.availability(&booking.doctor).await, &target)
            .await?;
        let offered = availability
            .as_ref()
            .is_some_and(|a| a.offers(specialist.profile.slot_minutes, &booking.window));
        if !offered {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "slot: {} does not offer {}",
                        booking.doctor, booking.window
                    )),
                    &target,
                )
                .await);
        }
        let auto_accept = availability.is_some_and(|a| a.auto_accept);
        let booked = Consultation::booked(
            new_consultation_id(),
            booking,
            own,
            specialist.institution.clone(),
            call.principal.user.clone(),
            auto_accept,
            now_micros(),
        )
        .map_err(|error| ApiError::FailedPrecondition(format!("slot: {error}")));
        let consultation = call.check(booked, &target).await?;
        let target = consultation_target(&consultation);
        let audit = call.audit(&target).details(json!({
            "doctor": consultation.doctor.as_ref().map(ToString::to_string),
            "consulting_institution": specialist.institution.to_string(),
            "window": consultation.window.map(|w| w.to_string()),
            "specialty": consultation.specialty.to_string(),
            "state": consultation.state.as_str(),
        }));
        call.check(
            self.store.create_consultation(&consultation, audit).await,
            &target,
        )
        .await?;
        self.events.publish(NoticeKind::Created, &consultation);
        answer(&consultation)
    }

    pub(super) async fn request_urgent_consultation(
        &self,
        request: Request<pb::RequestUrgentConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self
            .gate
            .admit(&request, Action::RequestUrgentConsultation)
            .await?;
        let urgent = call
            .check(
                UrgentRequest::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let own = call.principal.institution.clone();
        let target = AuditTarget::new(format!("specialty:{}", urgent.specialty), Some(&own));
        call.authorize(&Target::institution(&own), &target).await?;
        let pool = SpecialistQuery {
            specialty: Some(urgent.specialty.clone()),
            limit: PageSize::new(1),
            ..SpecialistQuery::default()
        };
        let anyone = call
            .check(self.store.search_specialists(&pool).await, &target)
            .await?;
        if anyone.is_empty() {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "specialty: no specialist of {} is in the directory",
                        urgent.specialty
                    )),
                    &target,
                )
                .await);
        }
        let consultation = Consultation::urgent(
            new_consultation_id(),
            urgent,
            own,
            call.principal.user.clone(),
            now_micros(),
        );
        let target = consultation_target(&consultation);
        let audit = call.audit(&target).details(json!({
            "urgency": "urgent",
            "specialty": consultation.specialty.to_string(),
        }));
        call.check(
            self.store.create_consultation(&consultation, audit).await,
            &target,
        )
        .await?;
        self.events
            .publish(NoticeKind::UrgentRequest, &consultation);
        answer(&consultation)
    }

    pub(super) async fn get_consultation(
        &self,
        request: Request<pb::GetConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self.gate.admit(&request, Action::GetConsultation).await?;
        let id = call
            .check(
                consultation_id(&request.get_ref().id, "id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        answer(&consultation)
    }

    pub(super) async fn list_consultations(
        &self,
        request: Request<pb::ListConsultationsRequest>,
    ) -> Answer<pb::ListConsultationsResponse> {
        let call = self.gate.admit(&request, Action::ListConsultations).await?;
        let target = AuditTarget::new("consultations", Some(&call.principal.institution));
        let filter = call
            .check(ConsultationFilter::try_from(request.into_inner()), &target)
            .await?;
        call.authorize(&Target::none(), &target).await?;
        let scope = policy::scope(&call.principal);
        let found = call
            .check(self.store.consultations(&scope, &filter).await, &target)
            .await?;
        let next_page_token = match found.last() {
            Some(last) if found.len() == filter.limit.get() as usize => {
                consultation_page_token(consultation_sort_key(last), &last.id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListConsultationsResponse {
            consultations: found.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    pub(super) async fn accept_consultation(
        &self,
        request: Request<pb::AcceptConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self
            .gate
            .admit(&request, Action::AcceptConsultation)
            .await?;
        let id = call
            .check(
                consultation_id(&request.get_ref().id, "id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let found = call
            .check(self.store.specialist(&call.principal.user).await, &target)
            .await?;
        let specialist = call
            .check(
                found.ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "{} has no specialist profile",
                        call.principal.user
                    ))
                }),
                &target,
            )
            .await?;
        let at = now_micros();
        let waited = (at - consultation.created_at).whole_seconds();
        let accepted = self
            .transition(
                &call,
                &consultation,
                Event::Accept {
                    doctor: call.principal.user.clone(),
                    institution: specialist.institution.clone(),
                    slot_minutes: specialist.profile.slot_minutes,
                    at,
                },
                json!({ "urgency": consultation.urgency.as_str(), "seconds_to_accept": waited }),
            )
            .await?;
        answer(&accepted)
    }

    pub(super) async fn decline_consultation(
        &self,
        request: Request<pb::DeclineConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self
            .gate
            .admit(&request, Action::DeclineConsultation)
            .await?;
        let request = request.into_inner();
        let (id, reason) = call
            .check(
                parse_id_and_reason(&request.id, &request.reason),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let declined = self
            .transition(
                &call,
                &consultation,
                Event::Decline {
                    reason: reason.clone(),
                },
                json!({ "reason": reason }),
            )
            .await?;
        answer(&declined)
    }

    pub(super) async fn cancel_consultation(
        &self,
        request: Request<pb::CancelConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self
            .gate
            .admit(&request, Action::CancelConsultation)
            .await?;
        let request = request.into_inner();
        let (id, reason) = call
            .check(
                parse_id_and_reason(&request.id, &request.reason),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let cancelled = self
            .transition(
                &call,
                &consultation,
                Event::Cancel {
                    reason: reason.clone(),
                    at: now_micros(),
                },
                json!({ "reason": reason }),
            )
            .await?;
        answer(&cancelled)
    }

    pub(super) async fn reschedule_consultation(
        &self,
        request: Request<pb::RescheduleConsultationRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self
            .gate
            .admit(&request, Action::RescheduleConsultation)
            .await?;
        let request = request.into_inner();
        let parsed = consultation_id(&request.id, "id")
            .and_then(|id| Ok((id, convert::slot(request.new_slot.as_ref(), "new_slot")?)));
        let (id, (doctor, window)) = call.check(parsed, &AuditTarget::unknown()).await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        if consultation.doctor.as_ref() != Some(&doctor) {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(
                        "new_slot.doctor_id: a consultation moves to another slot of the same doctor; book anew for another".into(),
                    ),
                    &target,
                )
                .await);
        }
        let found = call
            .check(self.store.specialist(&doctor).await, &target)
            .await?;
        let availability = call
            .check(self.store.availability(&doctor).await, &target)
            .await?;
        let offered = match (&found, &availability) {
            (Some(specialist), Some(availability)) => {
                availability.offers(specialist.profile.slot_minutes, &window)
            }
            _ => false,
        };
        if !offered {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "new_slot: {doctor} does not offer {window}"
                    )),
                    &target,
                )
                .await);
        }
        let old = consultation.window.map(|w| w.to_string());
        let moved = self
            .transition(
                &call,
                &consultation,
                Event::Reschedule {
                    window,
                    at: now_micros(),
                },
                json!({ "old_window": old, "new_window": window.to_string() }),
            )
            .await?;
        answer(&moved)
    }

    pub(super) async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self.gate.admit(&request, Action::RecordConsent).await?;
        let request = request.into_inner();
        let parsed = consultation_id(&request.id, "id")
            .and_then(|id| Ok((id, convert::consent(request.consent.as_ref())?)));
        let (id, (consenter, method, witness)) =
            call.check(parsed, &AuditTarget::unknown()).await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let record = ConsentRecord::new(
            consenter,
            method,
            call.principal.user.clone(),
            now_micros(),
            &witness,
        )
        .map_err(|(which, problem)| {
            crate::domain::InvalidField::new(format!("consent.{which}"), problem)
        });
        let record = call.check(record, &target).await?;
        let updated = self
            .transition(
                &call,
                &consultation,
                Event::RecordConsent(record),
                json!({ "consenter": consenter.as_str(), "method": method.as_str() }),
            )
            .await?;
        answer(&updated)
    }

    pub(super) async fn invite_participant(
        &self,
        request: Request<pb::InviteParticipantRequest>,
    ) -> Answer<pb::Consultation> {
        let call = self.gate.admit(&request, Action::InviteParticipant).await?;
        let request = request.into_inner();
        let parsed = consultation_id(&request.id, "id")
            .and_then(|id| Ok((id, user_id(&request.user_id, "user_id")?)));
        let (id, invitee) = call.check(parsed, &AuditTarget::unknown()).await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let found = call.check(self.store.user(&invitee).await, &target).await?;
        let user = call
            .check(
                found.ok_or_else(|| ApiError::NotFound(format!("user {invitee} not found"))),
                &target,
            )
            .await?;
        let event = match (user.role, user.active) {
            (_, false) => Err(ApiError::FailedPrecondition(format!(
                "user_id: {invitee} is deactivated"
            ))),
            (Role::Interpreter, true) => Ok(Event::Invite {
                interpreter: Some(invitee.clone()),
                doctor: None,
            }),
            (Role::Doctor, true) => Ok(Event::Invite {
                interpreter: None,
                doctor: Some(invitee.clone()),
            }),
            (role, true) => Err(ApiError::FailedPrecondition(format!(
                "user_id: only interpreters and doctors are invited; {invitee} is a {role}"
            ))),
        };
        let event = call.check(event, &target).await?;
        let updated = self
            .transition(
                &call,
                &consultation,
                event,
                json!({ "invitee": invitee.to_string(), "role": user.role.as_str() }),
            )
            .await?;
        answer(&updated)
    }
}

fn parse_id_and_reason(
    id: &str,
    reason: &str,
) -> Result<(crate::domain::consultation::ConsultationId, String), crate::domain::InvalidField> {
    Ok((consultation_id(id, "id")?, state_reason(reason, "reason")?))
}
