//! `AccountService`: password sign-in for the web console. A successful sign-in (or
//! enrollment) stores a web session and hands the browser a signed, HttpOnly cookie;
//! the gate then admits the console's calls as the same principal a certificate of
//! that user would be. Every sign-in, failure, lockout and sign-out is audited.

use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::convert::{timestamp, user_id};
use super::error::ApiError;
use super::gate::{AuditTarget, Gate};
use crate::audit::{Actor, AuditEntry, Outcome, now_micros, unix_micros};
use crate::auth::web_session::{self, SessionKey};
use crate::auth::{Channel, PeerInfo, password};
use crate::domain::account::{self, AddressFailures, SignInPolicy};
use crate::domain::directory::User;
use crate::domain::ids::UserId;
use crate::domain::policy::{Action, Target};
use crate::domain::{InvalidField, field};
use crate::proto::v1 as pb;
use crate::proto::v1::account_service_server::AccountService;
use crate::store::{Enrollment, SharedStore, StoreError, WebSession};

const SIGN_IN: &str = "account.sign_in";
const ENROLL: &str = "account.enroll";

pub struct Account {
    gate: Gate,
    store: SharedStore,
    policy: SignInPolicy,
    /// Recent failed sign-ins by address, on this node.
    address_failures: std::sync::Mutex<AddressFailures>,
}

impl Account {
    pub fn new(gate: Gate, policy: SignInPolicy) -> Self {
        Self {
            store: gate.store().clone(),
            gate,
            policy,
            address_failures: Default::default(),
        }
    }

    fn key(&self) -> Result<&SessionKey, ApiError> {
        self.gate
            .session_key()
            .ok_or_else(|| ApiError::FailedPrecondition("this broker serves no web console".into()))
    }

    async fn record(&self, entry: AuditEntry) {
        if let Err(error) = self.store.append_audit(entry).await {
            tracing::error!(%error, "could not write an audit record");
        }
    }

    /// A refusal of an unauthenticated call: recorded with who it claimed to be.
    async fn refuse(
        &self,
        action: &str,
        actor: Actor,
        target: &str,
        error: ApiError,
        from: &Origin,
    ) -> Status {
        let entry = AuditEntry::new(actor, action, target, error.outcome())
            .details(json!({ "reason": error.to_string() }))
            .details(from.details());
        self.record(entry).await;
        error.into()
    }

    /// A web session of `user` from now, with the response that sets its cookie.
    fn new_session(&self, user: &UserId, now: OffsetDateTime) -> WebSession {
        WebSession {
            id: web_session::new_session_id(),
            user: user.clone(),
            created_at: unix_micros(now),
            expires_at: unix_micros(now + self.policy.session_lifetime),
            ended_at: None,
        }
    }

    fn signed_in(
        &self,
        user: &User,
        session: &WebSession,
        expires: OffsetDateTime,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let key = self.key()?;
        let principal = pb::Principal {
            user_id: user.id.to_string(),
            institution_id: user.institution.to_string(),
            role: super::convert::role_to_proto(user.role) as i32,
            certificate_fingerprint: String::new(),
        };
        let mut response = Response::new(pb::SignInResponse {
            principal: Some(principal),
            expires_at: Some(timestamp(expires)),
        });
        let cookie = web_session::set_cookie(
            &key.sign(&session.id),
            self.policy.session_lifetime.whole_seconds(),
        );
        response.metadata_mut().insert(
            "set-cookie",
            MetadataValue::try_from(cookie).map_err(|e| ApiError::Internal(Box::new(e)))?,
        );
        Ok(response)
    }
}

/// A sign-in that did not succeed, as the audit log records it.
struct Failure<'a> {
    id: &'a UserId,
    actor: Actor,
    target: &'a str,
    reason: &'static str,
    from: &'a Origin,
}

impl Account {
    /// Records a failed sign-in and answers it. A wrong password for an account with
    /// one counts towards the lockout (`counted`); every failure gets the same answer
    /// until the account locks.
    async fn failed_sign_in(&self, failure: Failure<'_>, counted: bool, now: i64) -> Status {
        if let Some(address) = failure.from.0 {
            self.address_failures
                .lock()
                .expect("address failures lock")
                .record(address, now, &self.policy);
        }
        let audit = AuditEntry::new(failure.actor, SIGN_IN, failure.target, Outcome::Denied)
            .details(json!({ "reason": failure.reason }))
            .details(failure.from.details());
        if !counted {
            self.record(audit).await;
            return wrong_credentials().into();
        }
        let lockout = self.policy.lockout.whole_microseconds() as i64;
        let failed = self
            .store
            .record_failed_sign_in(failure.id, now, self.policy.max_failures, lockout, audit)
            .await;
        match failed {
            Ok(outcome) => match outcome.locked_until {
                Some(until) => ApiError::PermissionDenied(format!(
                    "wrong user id or password; after {} failed sign-ins the account is locked until {}",
                    self.policy.max_failures,
                    shanghai(until)
                ))
                .into(),
                None => wrong_credentials().into(),
            },
            Err(error) => ApiError::from(error).into(),
        }
    }
}

/// Where a browser's sign-in or enrollment came from (the TCP peer of the console
/// port), for its audit record.
struct Origin(Option<std::net::IpAddr>);

impl Origin {
    fn of<T>(request: &Request<T>) -> Self {
        let peer = request.extensions().get::<PeerInfo>();
        Self(
            peer.and_then(|peer| peer.remote_addr)
                .map(|address| address.ip()),
        )
    }

    fn details(&self) -> serde_json::Value {
        match self.0 {
            Some(address) => json!({ "address": address.to_string() }),
            None => json!({}),
        }
    }
}

fn on_console<T>(request: &Request<T>) -> Result<(), ApiError> {
    let channel = request
        .extensions()
        .get::<PeerInfo>()
        .map(|peer| peer.channel);
    match channel {
        Some(Channel::Console) => Ok(()),
        _ => Err(ApiError::FailedPrecondition(
            "password sign-in is only available on the web console's port".into(),
        )),
    }
}

fn claimed_actor(user: &str) -> Actor {
    Actor {
        user: user.chars().take(64).collect(),
        ..Actor::default()
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn shanghai(micros: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{} (UTC+8)", crate::domain::schedule::local_minute(at))
}

/// Runs argon2 off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, password::PasswordError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthenticated("wrong user id or password".into())
}

#[tonic::async_trait]
impl AccountService for Account {
    async fn sign_in(
        &self,
        request: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let claimed = claimed_actor(&request.get_ref().user_id);
        let from = Origin::of(&request);
        if let Err(error) = on_console(&request).and(self.key().map(|_| ())) {
            return Err(self.refuse(SIGN_IN, claimed, "-", error, &from).await);
        }
        let pb::SignInRequest {
            user_id: raw,
            password: offered,
        } = request.into_inner();
        let parsed = user_id(&raw, "user_id").and_then(|id| {
            account::check_offered_password(&offered).map_err(field("password"))?;
            Ok(id)
        });
        let id = match parsed {
            Ok(id) => id,
            Err(invalid) => {
                return Err(self
                    .refuse(SIGN_IN, claimed, "-", invalid.into(), &from)
                    .await);
            }
        };
        let target = format!("user:{id}");
        let now = now_micros();
        let now_us = unix_micros(now);
        // Before anything is read or verified: a held-back address costs nothing.
        let held_back = from.0.and_then(|address| {
            self.address_failures
                .lock()
                .expect("address failures lock")
                .held_back_until(address, now_us, &self.policy)
        });
        if let Some(until) = held_back {
            let error = ApiError::ResourceExhausted(format!(
                "too many failed sign-ins from this address; try again after {}",
                shanghai(until)
            ));
            return Err(self.refuse(SIGN_IN, claimed, &target, error, &from).await);
        }
        let user = self.store.user(&id).await.map_err(ApiError::from)?;
        let credential = self.store.credential(&id).await.map_err(ApiError::from)?;
        let actor = user.as_ref().map(Actor::from).unwrap_or(claimed);

        if let Some(credential) = &credential
            && account::is_locked(credential.locked_until, now_us)
        {
            let until = credential.locked_until.unwrap_or_default();
            let error = ApiError::PermissionDenied(format!(
                "the account is locked after repeated failed sign-ins until {}; an admin can unlock it by setting a new password",
                shanghai(until)
            ));
            return Err(self.refuse(SIGN_IN, actor, &target, error, &from).await);
        }
        // Verify even when there is nothing to verify against, so that the answer
        // takes as long for an unknown user as for a wrong password.
        let stored = credential
            .as_ref()
            .map(|c| c.password_hash.clone())
            .unwrap_or_else(|| password::decoy_hash().to_owned());
        let matches = blocking(move || password::verify(&offered, &stored)).await?;
        let usable = user.as_ref().filter(|u| u.active);
        let (Some(user), Some(_), true) = (usable, credential.as_ref(), matches) else {
            let reason = match (&user, &credential) {
                (None, _) => "no such user",
                (Some(u), _) if !u.active => "the user is deactivated",
                (_, None) => "the user has no password",
                _ => "wrong password",
            };
            let counted = credential.is_some() && !matches;
            let failure = Failure {
                id: &id,
                actor,
                target: &target,
                reason,
                from: &from,
            };
            return Err(self.failed_sign_in(failure, counted, now_us).await);
        };

        let session = self.new_session(&user.id, now);
        let expires = now + self.policy.session_lifetime;
        let audit = AuditEntry::new(Actor::from(user), SIGN_IN, target.as_str(), Outcome::Ok)
            .details(json!({
                "session": web_session::audit_ref(&session.id),
                "expires_at": expires.unix_timestamp(),
            }))
            .details(from.details());
        self.store
            .start_web_session(&session, audit)
            .await
            .map_err(ApiError::from)?;
        self.signed_in(user, &session, expires)
    }

    async fn sign_out(
        &self,
        request: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let call = self.gate.admit(&request, Action::SignOut).await?;
        let target = AuditTarget::user(&call.principal.user, &call.principal.institution);
        let Some(session) = call.web_session.clone() else {
            let error = ApiError::FailedPrecondition(
                "only a web console session can sign out; certificates are revoked instead".into(),
            );
            return Err(call.refuse(error, &target).await);
        };
        let audit = call
            .audit(&target)
            .details(json!({ "session": web_session::audit_ref(&session) }));
        let ended = self
            .store
            .end_web_session(&session, unix_micros(now_micros()), audit)
            .await;
        call.check(ended, &target).await?;
        let mut response = Response::new(pb::SignOutResponse {});
        response.metadata_mut().insert(
            "set-cookie",
            MetadataValue::try_from(web_session::clear_cookie())
                .map_err(|e| ApiError::Internal(Box::new(e)))?,
        );
        Ok(response)
    }

    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let from = Origin::of(&request);
        if let Err(error) = on_console(&request).and(self.key().map(|_| ())) {
            return Err(self
                .refuse(ENROLL, Actor::default(), "-", error, &from)
                .await);
        }
        let pb::EnrollRequest {
            token,
            password: chosen,
        } = request.into_inner();
        let checked = if token.is_empty() || token.len() > 128 {
            Err(InvalidField::new(
                "token",
                "must be the token of an enrollment link",
            ))
        } else {
            account::check_new_password(&chosen).map_err(field("password"))
        };
        if let Err(invalid) = checked {
            return Err(self
                .refuse(ENROLL, Actor::default(), "-", invalid.into(), &from)
                .await);
        }
        let hash = token_hash(&token);
        let now = now_micros();
        let found = self.store.enrollment(&hash).await.map_err(ApiError::from)?;
        let Some(enrollment) = found else {
            let error = ApiError::NotFound("token: no such enrollment".into());
            return Err(self
                .refuse(ENROLL, Actor::default(), "-", error, &from)
                .await);
        };
        let target = format!("user:{}", enrollment.user);
        let user = self
            .store
            .user(&enrollment.user)
            .await
            .map_err(ApiError::from)?;
        let actor = user
            .as_ref()
            .map(Actor::from)
            .unwrap_or_else(|| claimed_actor(enrollment.user.as_str()));
        let refusal = if enrollment.used_at.is_some() {
            Some("token: this enrollment link has already been used")
        } else if enrollment.expires_at <= unix_micros(now) {
            Some("token: this enrollment link has expired; ask an admin for a new one")
        } else {
            None
        };
        let user = match (refusal, user) {
            (None, Some(user)) if user.active => user,
            (refusal, _) => {
                let reason = refusal.unwrap_or("the user is not active");
                let error = ApiError::FailedPrecondition(reason.into());
                return Err(self.refuse(ENROLL, actor, &target, error, &from).await);
            }
        };
        let password_hash = blocking(move || password::hash(&chosen)).await?;
        let session = self.new_session(&user.id, now);
        let expires = now + self.policy.session_lifetime;
        let audit = AuditEntry::new(Actor::from(&user), ENROLL, target.as_str(), Outcome::Ok)
            .details(json!({ "session": web_session::audit_ref(&session.id) }))
            .details(from.details());
        if let Err(error) = self
            .store
            .enroll(&hash, &password_hash, &session, audit)
            .await
        {
            let error = match error {
                StoreError::Conflict(reason) => ApiError::FailedPrecondition(reason),
                other => other.into(),
            };
            return Err(self
                .refuse(ENROLL, Actor::from(&user), &target, error, &from)
                .await);
        }
        self.signed_in(&user, &session, expires)
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let call = self.gate.admit(&request, Action::SetPassword).await?;
        let pb::SetPasswordRequest {
            user_id: raw,
            password: chosen,
        } = request.into_inner();
        let parsed = user_id(&raw, "user_id").and_then(|id| {
            account::check_new_password(&chosen).map_err(field("password"))?;
            Ok(id)
        });
        let id = call.check(parsed, &AuditTarget::unknown()).await?;
        let user = self.load_authorized_user(&call, &id).await?;
        let target = AuditTarget::user(&user.id, &user.institution);
        let password_hash = call
            .check(blocking(move || password::hash(&chosen)).await, &target)
            .await?;
        let audit = call.audit(&target).details(json!({ "unlocked": true }));
        let stored = self
            .store
            .set_password(&user.id, &password_hash, unix_micros(now_micros()), audit)
            .await;
        call.check(stored, &target).await?;
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn create_enrollment(
        &self,
        request: Request<pb::CreateEnrollmentRequest>,
    ) -> Result<Response<pb::CreateEnrollmentResponse>, Status> {
        let call = self.gate.admit(&request, Action::CreateEnrollment).await?;
        let pb::CreateEnrollmentRequest {
            user_id: raw,
            valid_hours,
        } = request.into_inner();
        let parsed = user_id(&raw, "user_id").and_then(|id| {
            let validity = self
                .policy
                .enrollment_validity(valid_hours)
                .map_err(field("valid_hours"))?;
            Ok((id, validity))
        });
        let (id, validity) = call.check(parsed, &AuditTarget::unknown()).await?;
        let user = self.load_authorized_user(&call, &id).await?;
        let target = AuditTarget::user(&user.id, &user.institution);
        if !user.active {
            // The link could never be used: enrolling needs an active user.
            let error = ApiError::FailedPrecondition(format!(
                "user {} is deactivated: reactivate them before sending an enrollment link",
                user.id
            ));
            return Err(call.refuse(error, &target).await);
        }
        let token = format!(
            "{}{}",
            web_session::new_session_id(),
            web_session::new_session_id()
        );
        let now = now_micros();
        let expires = now + validity;
        let enrollment = Enrollment {
            token_hash: token_hash(&token),
            user: user.id.clone(),
            created_at: unix_micros(now),
            expires_at: unix_micros(expires),
            used_at: None,
        };
        let audit = call
            .audit(&target)
            .details(json!({ "expires_at": expires.unix_timestamp() }));
        let created = self.store.create_enrollment(&enrollment, audit).await;
        call.check(created, &target).await?;
        Ok(Response::new(pb::CreateEnrollmentResponse {
            enrollment_path: format!("/#/enroll/{token}"),
            token,
            expires_at: Some(timestamp(expires)),
        }))
    }
}

impl Account {
    /// The user an admin acts on, once the policy allows it; refusals are audited.
    async fn load_authorized_user(
        &self,
        call: &super::gate::Call,
        id: &UserId,
    ) -> Result<User, Status> {
        let unplaced = AuditTarget::new(format!("user:{id}"), None);
        let found = call.check(self.store.user(id).await, &unplaced).await?;
        let Some(user) = found else {
            call.authorize(&Target::none(), &unplaced).await?;
            let error = ApiError::NotFound(format!("user {id} not found"));
            return Err(call.refuse(error, &unplaced).await);
        };
        let target = AuditTarget::user(&user.id, &user.institution);
        call.authorize(&Target::user(&user.id, &user.institution), &target)
            .await?;
        Ok(user)
    }
}
