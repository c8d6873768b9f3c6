//! Availability and the search for free slots.

use std::collections::HashSet;

use serde_json::json;
use tonic::{Request, Response, Status};

use super::Scheduling;
use crate::api::convert::scheduling::{SlotSearch, slot_page_token, slot_to_proto};
use crate::api::convert::user_id;
use crate::api::error::ApiError;
use crate::api::gate::AuditTarget;
use crate::audit::now_micros;
use crate::domain::directory::{PageSize, Role, Specialist, SpecialistQuery};
use crate::domain::policy::{Action, Target};
use crate::domain::schedule::Availability;
use crate::proto::v1 as pb;

impl Scheduling {
    pub(super) async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::Availability>, Status> {
        let call = self.gate.admit(&request, Action::SetAvailability).await?;
        let availability = call
            .check(
                Availability::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let unplaced = AuditTarget::new(format!("user:{}", availability.doctor), None);
        let found = call
            .check(self.store.user(&availability.doctor).await, &unplaced)
            .await?;
        let Some(doctor) = found else {
            call.authorize(&Target::none(), &unplaced).await?;
            return Err(call
                .refuse(
                    ApiError::NotFound(format!("user {} not found", availability.doctor)),
                    &unplaced,
                )
                .await);
        };
        let target = AuditTarget::user(&doctor.id, &doctor.institution);
        call.authorize(&Target::user(&doctor.id, &doctor.institution), &target)
            .await?;
        if doctor.role != Role::Doctor {
            return Err(call
                .refuse(
                    ApiError::FailedPrecondition(format!(
                        "{} is a {}, not a doctor",
                        doctor.id, doctor.role
                    )),
                    &target,
                )
                .await);
        }
        let audit = call.audit(&target).details(json!({
            "weekly": availability.weekly().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "exceptions": availability.exceptions().len(),
            "auto_accept": availability.auto_accept,
        }));
        call.check(
            self.store.set_availability(&availability, audit).await,
            &target,
        )
        .await?;
        Ok(Response::new((&availability).into()))
    }

    pub(super) async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::Availability>, Status> {
        let call = self.gate.admit(&request, Action::GetAvailability).await?;
        let id = call
            .check(
                user_id(&request.get_ref().doctor_id, "doctor_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = AuditTarget::new(format!("user:{id}"), None);
        call.authorize(&Target::none(), &target).await?;
        let doctor = call
            .check(self.store.specialist(&id).await, &target)
            .await?;
        if doctor.is_none() {
            return Err(call
                .refuse(
                    ApiError::NotFound(format!("specialist {id} not found")),
                    &target,
                )
                .await);
        }
        let found = call
            .check(self.store.availability(&id).await, &target)
            .await?;
        // A specialist who has published nothing offers no slots.
        let availability = found.unwrap_or_else(|| {
            Availability::new(id.clone(), vec![], vec![], false)
                .expect("empty availability is valid")
        });
        Ok(Response::new((&availability).into()))
    }

    pub(super) async fn search_slots(
        &self,
        request: Request<pb::SearchSlotsRequest>,
    ) -> Result<Response<pb::SearchSlotsResponse>, Status> {
        let call = self.gate.admit(&request, Action::SearchSlots).await?;
        let target = AuditTarget::new("directory", None);
        let now = now_micros();
        let search = call
            .check(SlotSearch::parse(request.into_inner(), now), &target)
            .await?;
        call.authorize(&Target::none(), &target).await?;

        let specialists = call
            .check(self.matching_specialists(&search).await, &target)
            .await?;
        let doctors: Vec<_> = specialists
            .iter()
            .map(|s| s.profile.user_id.clone())
            .collect();
        let claims = call
            .check(
                self.store.claimed_quanta(&doctors, &search.range).await,
                &target,
            )
            .await?;
        let mut slots = Vec::new();
        for specialist in &specialists {
            let id = &specialist.profile.user_id;
            let Some(availability) = call
                .check(self.store.availability(id).await, &target)
                .await?
            else {
                continue;
            };
            let claimed: HashSet<_> = claims
                .iter()
                .filter(|(doctor, _)| doctor == id)
                .map(|(_, at)| *at)
                .collect();
            for window in
                availability.free_slots(specialist.profile.slot_minutes, &search.range, &claimed)
            {
                slots.push((window, id.clone(), specialist.institution.clone()));
            }
        }
        slots.sort_by(|a, b| (a.0.start(), &a.1).cmp(&(b.0.start(), &b.1)));
        let mut page: Vec<_> = slots
            .into_iter()
            .filter(|(window, doctor, _)| match &search.after {
                Some((start, after)) => (window.start(), doctor) > (*start, after),
                None => true,
            })
            .take(search.limit.get() as usize + 1)
            .collect();
        let next_page_token = if page.len() > search.limit.get() as usize {
            page.pop();
            page.last()
                .map(|(window, doctor, _)| slot_page_token(window.start(), doctor))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::SearchSlotsResponse {
            slots: page
                .iter()
                .map(|(window, doctor, institution)| slot_to_proto(doctor, institution, window))
                .collect(),
            next_page_token,
        }))
    }

    /// Every active specialist the search's filters admit.
    async fn matching_specialists(
        &self,
        search: &SlotSearch,
    ) -> crate::store::Result<Vec<Specialist>> {
        let mut query = SpecialistQuery {
            specialty: search.specialty.clone(),
            institution: search.institution.clone(),
            language: search.language,
            name_contains: None,
            after: None,
            limit: PageSize::new(PageSize::MAX),
        };
        let mut found = Vec::new();
        loop {
            let page = self.store.search_specialists(&query).await?;
            let full = page.len() == query.limit.get() as usize;
            query.after = page.last().map(|s| s.profile.user_id.clone());
            found.extend(page.into_iter().filter(|s| {
                search
                    .doctor
                    .as_ref()
                    .is_none_or(|d| *d == s.profile.user_id)
            }));
            if !full {
                return Ok(found);
            }
        }
    }
}
