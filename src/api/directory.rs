//! `DirectoryService`: institutions, users and specialists.

use serde_json::json;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::error::ApiError;
use super::gate::{AuditTarget, Gate};
use crate::domain::directory::{
    Institution, InstitutionChanges, InstitutionKind, SpecialistProfile, SpecialistQuery, User,
    UserChanges, UserQuery,
};
use crate::domain::ids::{InstitutionId, UserId};
use crate::domain::policy::{Action, Target};
use crate::proto::v1 as pb;
use crate::proto::v1::directory_service_server::DirectoryService;
use crate::store::SharedStore;

use super::convert;

pub struct Directory {
    gate: Gate,
    store: SharedStore,
}

impl Directory {
    pub fn new(gate: Gate) -> Self {
        Self {
            store: gate.store().clone(),
            gate,
        }
    }
}

fn not_found(entity: &str, id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("{entity} {id} not found"))
}

#[tonic::async_trait]
impl DirectoryService for Directory {
    #[instrument(skip_all)]
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let call = self.gate.admit(&request, Action::WhoAmI).await?;
        let target = AuditTarget::user(&call.principal.user, &call.principal.institution);
        let user = call
            .check(self.store.user(&call.principal.user).await, &target)
            .await?;
        let institution = call
            .check(
                self.store.institution(&call.principal.institution).await,
                &target,
            )
            .await?;
        Ok(Response::new(pb::WhoAmIResponse {
            principal: Some((&call.principal).into()),
            user: user.as_ref().map(Into::into),
            institution: institution.as_ref().map(Into::into),
        }))
    }

    #[instrument(skip_all)]
    async fn get_institution(
        &self,
        request: Request<pb::GetInstitutionRequest>,
    ) -> Result<Response<pb::Institution>, Status> {
        let call = self.gate.admit(&request, Action::GetInstitution).await?;
        let id = call
            .check(
                convert::institution_id(&request.get_ref().id, "id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = AuditTarget::institution(&id);
        call.authorize(&Target::institution(&id), &target).await?;
        let found = call
            .check(self.store.institution(&id).await, &target)
            .await?;
        let institution = call
            .check(found.ok_or_else(|| not_found("institution", &id)), &target)
            .await?;
        Ok(Response::new((&institution).into()))
    }

    #[instrument(skip_all)]
    async fn list_institutions(
        &self,
        request: Request<pb::ListInstitutionsRequest>,
    ) -> Result<Response<pb::ListInstitutionsResponse>, Status> {
        let call = self.gate.admit(&request, Action::ListInstitutions).await?;
        let target = AuditTarget::new("directory", None);
        let kind = call
            .check(
                Option::<InstitutionKind>::try_from(request.into_inner()),
                &target,
            )
            .await?;
        call.authorize(&Target::none(), &target).await?;
        let institutions = call
            .check(self.store.institutions(kind).await, &target)
            .await?;
        Ok(Response::new(pb::ListInstitutionsResponse {
            institutions: institutions.iter().map(Into::into).collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn create_institution(
        &self,
        request: Request<pb::CreateInstitutionRequest>,
    ) -> Result<Response<pb::Institution>, Status> {
        let call = self.gate.admit(&request, Action::CreateInstitution).await?;
        let institution = call
            .check(
                Institution::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = AuditTarget::institution(&institution.id);
        call.authorize(&Target::institution(&institution.id), &target)
            .await?;
        let audit = call.audit(&target).details(json!({
            "kind": institution.kind.as_str(),
            "name_en": institution.name_en.as_str(),
        }));
        call.check(
            self.store.create_institution(&institution, audit).await,
            &target,
        )
        .await?;
        Ok(Response::new((&institution).into()))
    }

    #[instrument(skip_all)]
    async fn update_institution(
        &self,
        request: Request<pb::UpdateInstitutionRequest>,
    ) -> Result<Response<pb::Institution>, Status> {
        let call = self.gate.admit(&request, Action::UpdateInstitution).await?;
        let (id, changes): (InstitutionId, InstitutionChanges) = call
            .check(request.into_inner().try_into(), &AuditTarget::unknown())
            .await?;
        let target = AuditTarget::institution(&id);
        call.authorize(&Target::institution(&id), &target).await?;
        let found = call
            .check(self.store.institution(&id).await, &target)
            .await?;
        let current = call
            .check(found.ok_or_else(|| not_found("institution", &id)), &target)
            .await?;
        let update = changes.apply(&current);
        let audit = call.audit(&target).details(json!({
            "name_zh": update.name_zh.as_str(),
            "name_en": update.name_en.as_str(),
            "region": update.region.as_str(),
        }));
        let updated = call
            .check(self.store.update_institution(&update, audit).await, &target)
            .await?;
        Ok(Response::new((&updated).into()))
    }

    #[instrument(skip_all)]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let call = self.gate.admit(&request, Action::GetUser).await?;
        let id = call
            .check(
                convert::user_id(&request.get_ref().id, "id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let found = call
            .check(
                self.store.user(&id).await,
                &AuditTarget::new(format!("user:{id}"), None),
            )
            .await?;
        // Who may see a user depends on where the user belongs; a user the caller may
        // not see is answered as if absent only for callers who could see it.
        let Some(user) = found else {
            let target = AuditTarget::new(format!("user:{id}"), None);
            call.authorize(&Target::none(), &target).await?;
            return Err(call.refuse(not_found("user", &id), &target).await);
        };
        let target = AuditTarget::user(&user.id, &user.institution);
        call.authorize(&Target::user(&user.id, &user.institution), &target)
            .await?;
        Ok(Response::new((&user).into()))
    }

    #[instrument(skip_all)]
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let call = self.gate.admit(&request, Action::ListUsers).await?;
        let query = call
            .check(
                UserQuery::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = match &query.institution {
            Some(institution) => AuditTarget::institution(institution),
            None => AuditTarget::new("directory", None),
        };
        let policy_target = Target {
            institution: query.institution.clone(),
            ..Target::none()
        };
        call.authorize(&policy_target, &target).await?;
        let users = call.check(self.store.users(&query).await, &target).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(Into::into).collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let call = self.gate.admit(&request, Action::CreateUser).await?;
        let user = call
            .check(
                User::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = AuditTarget::user(&user.id, &user.institution);
        call.authorize(&Target::user(&user.id, &user.institution), &target)
            .await?;
        let audit = call.audit(&target).details(json!({
            "role": user.role.as_str(),
            "display_name_en": user.display_name_en.as_str(),
        }));
        call.check(self.store.create_user(&user, audit).await, &target)
            .await?;
        Ok(Response::new((&user).into()))
    }

    #[instrument(skip_all)]
    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let call = self.gate.admit(&request, Action::UpdateUser).await?;
        let (id, changes): (UserId, UserChanges) = call
            .check(request.into_inner().try_into(), &AuditTarget::unknown())
            .await?;
        let unplaced = AuditTarget::new(format!("user:{id}"), None);
        let found = call.check(self.store.user(&id).await, &unplaced).await?;
        let Some(current) = found else {
            call.authorize(&Target::none(), &unplaced).await?;
            return Err(call.refuse(not_found("user", &id), &unplaced).await);
        };
        let target = AuditTarget::user(&current.id, &current.institution);
        call.authorize(&Target::user(&current.id, &current.institution), &target)
            .await?;
        let update = changes.apply(&current);
        let audit = call.audit(&target).details(json!({
            "display_name_zh": update.display_name_zh.as_str(),
            "display_name_en": update.display_name_en.as_str(),
            "active": update.active,
        }));
        let updated = call
            .check(self.store.update_user(&update, audit).await, &target)
            .await?;
        Ok(Response::new((&updated).into()))
    }

    #[instrument(skip_all)]
    async fn set_specialist_profile(
        &self,
        request: Request<pb::SetSpecialistProfileRequest>,
    ) -> Result<Response<pb::Specialist>, Status> {
        let call = self
            .gate
            .admit(&request, Action::SetSpecialistProfile)
            .await?;
        let profile = call
            .check(
                SpecialistProfile::try_from(request.into_inner()),
                &AuditTarget::unknown(),
            )
            .await?;
        let unplaced = AuditTarget::new(format!("user:{}", profile.user_id), None);
        let found = call
            .check(self.store.user(&profile.user_id).await, &unplaced)
            .await?;
        let Some(doctor) = found else {
            call.authorize(&Target::none(), &unplaced).await?;
            return Err(call
                .refuse(not_found("user", &profile.user_id), &unplaced)
                .await);
        };
        let target = AuditTarget::user(&doctor.id, &doctor.institution);
        call.authorize(&Target::user(&doctor.id, &doctor.institution), &target)
            .await?;
        let audit = call.audit(&target).details(json!({
            "specialties": profile.specialties.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "languages": profile.languages.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "title": profile.title.as_str(),
            "on_call": profile.on_call,
            "slot_minutes": profile.slot_minutes.get(),
        }));
        let specialist = call
            .check(
                self.store.set_specialist_profile(&profile, audit).await,
                &target,
            )
            .await?;
        Ok(Response::new((&specialist).into()))
    }

    #[instrument(skip_all)]
    async fn get_specialist(
        &self,
        request: Request<pb::GetSpecialistRequest>,
    ) -> Result<Response<pb::Specialist>, Status> {
        let call = self.gate.admit(&request, Action::GetSpecialist).await?;
        let id = call
            .check(
                convert::user_id(&request.get_ref().user_id, "user_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let target = AuditTarget::new(format!("user:{id}"), None);
        call.authorize(&Target::none(), &target).await?;
        let found = call
            .check(self.store.specialist(&id).await, &target)
            .await?;
        let specialist = call
            .check(found.ok_or_else(|| not_found("specialist", &id)), &target)
            .await?;
        Ok(Response::new((&specialist).into()))
    }

    #[instrument(skip_all)]
    async fn search_specialists(
        &self,
        request: Request<pb::SearchSpecialistsRequest>,
    ) -> Result<Response<pb::SearchSpecialistsResponse>, Status> {
        let call = self.gate.admit(&request, Action::SearchSpecialists).await?;
        let target = AuditTarget::new("directory", None);
        let query = call
            .check(SpecialistQuery::try_from(request.into_inner()), &target)
            .await?;
        call.authorize(&Target::none(), &target).await?;
        let specialists = call
            .check(self.store.search_specialists(&query).await, &target)
            .await?;
        let full_page = specialists.len() == query.limit.get() as usize;
        let next_page_token = match specialists.last() {
            Some(last) if full_page => last.profile.user_id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::SearchSpecialistsResponse {
            specialists: specialists.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }
}
