//! Every RPC passes the gate: the caller's certificate (on the mTLS port) or web
//! session (on the console port) is matched against the directory (authentication),
//! the policy is asked (authorization), and every refusal is written to the audit log
//! before the caller hears of it.

use serde_json::json;
use tonic::{Request, Status};

use super::error::ApiError;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::audit::{now_micros, unix_micros};
use crate::auth::tls::Revocations;
use crate::auth::web_session::{self, SessionKey};
use crate::auth::{CertificateIdentity, Channel, PeerInfo};
use crate::domain::directory::{Role, User};
use crate::domain::ids::{InstitutionId, UserId};
use crate::domain::policy::{Action, Decision, Target, authorize};
use crate::domain::principal::Principal;
use crate::store::SharedStore;

/// What an audit record says a call was applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    /// e.g. `user:biru-nurse-dawa`, `institution:zju2-hospital`, `directory`.
    pub label: String,
    pub institution: Option<InstitutionId>,
}

impl AuditTarget {
    pub fn new(label: impl Into<String>, institution: Option<&InstitutionId>) -> Self {
        Self {
            label: label.into(),
            institution: institution.cloned(),
        }
    }

    pub fn user(id: &UserId, institution: &InstitutionId) -> Self {
        Self::new(format!("user:{id}"), Some(institution))
    }

    pub fn institution(id: &InstitutionId) -> Self {
        Self::new(format!("institution:{id}"), Some(id))
    }

    /// Before the request has been parsed, the target is not known yet.
    pub fn unknown() -> Self {
        Self::new("-", None)
    }
}

#[derive(Clone)]
pub struct Gate {
    store: SharedStore,
    revocations: Revocations,
    /// Verifies web session cookies; `None` when the broker serves no console.
    sessions: Option<SessionKey>,
}

/// An authenticated call in progress.
pub struct Call {
    pub principal: Principal,
    pub action: Action,
    /// The web session the call was made in, if it came from the console.
    pub web_session: Option<String>,
    store: SharedStore,
}

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated(message.into())
}

impl Gate {
    pub fn new(store: SharedStore, revocations: Revocations, sessions: Option<SessionKey>) -> Self {
        Self {
            store,
            revocations,
            sessions,
        }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn session_key(&self) -> Option<&SessionKey> {
        self.sessions.as_ref()
    }

    /// Records a caller who could not be authenticated, as who they claimed to be.
    async fn refuse(
        &self,
        actor: Actor,
        action: Action,
        details: serde_json::Value,
        error: ApiError,
    ) -> Status {
        let entry = AuditEntry::new(actor, action.name(), "-", error.outcome()).details(details);
        record(&self.store, entry).await;
        error.into()
    }

    /// Authenticates the caller of `request` for `action`.
    pub async fn admit<T>(&self, request: &Request<T>, action: Action) -> Result<Call, Status> {
        let peer = request.extensions().get::<PeerInfo>();
        if peer.is_some_and(|peer| peer.channel == Channel::Console) {
            return self.admit_web_session(request, action).await;
        }
        let Some(identity) = peer.and_then(|peer| peer.identity.as_deref()) else {
            // Only reachable if the TLS layer let a connection through without a
            // readable certificate; there is nobody to attribute the refusal to.
            return Err(unauthenticated("a client certificate is required").into());
        };
        match self.authenticate(identity).await {
            Ok(principal) => Ok(Call {
                principal,
                action,
                web_session: None,
                store: self.store.clone(),
            }),
            Err(error) => {
                let actor = Actor {
                    user: identity.user.clone(),
                    institution: identity.institution.clone(),
                    role: identity.role.clone(),
                    certificate_fingerprint: identity.fingerprint.clone(),
                };
                let details = json!({ "stage": "authenticate", "reason": error.to_string() });
                Err(self.refuse(actor, action, details, error).await)
            }
        }
    }

    /// Matches the certificate's claims against the directory: the user must exist,
    /// be active, and belong to the institution and role the certificate names.
    async fn authenticate(&self, identity: &CertificateIdentity) -> Result<Principal, ApiError> {
        // The handshake checked the CRL of its time; this connection may have been
        // open since before the certificate was revoked.
        if self.revocations.is_revoked(&identity.serial) {
            return Err(unauthenticated("the client certificate has been revoked"));
        }
        let role: Role = identity.role.parse().map_err(|_| {
            unauthenticated(format!(
                "certificate role (OU) {:?} is not a known role",
                identity.role
            ))
        })?;
        let institution = InstitutionId::parse(&identity.institution).map_err(|_| {
            unauthenticated(format!(
                "certificate institution (O) {:?} is not a valid institution id",
                identity.institution
            ))
        })?;
        let user_id = UserId::parse(&identity.user).map_err(|_| {
            unauthenticated(format!(
                "certificate user (CN) {:?} is not a valid user id",
                identity.user
            ))
        })?;
        let Some(user) = self.store.user(&user_id).await? else {
            if self.store.institution(&institution).await?.is_none() {
                return Err(unauthenticated(format!(
                    "certificate institution (O) {institution} is not in the directory"
                )));
            }
            return Err(unauthenticated(format!(
                "certificate user (CN) {user_id} is not in the directory"
            )));
        };
        if user.institution != institution {
            return Err(unauthenticated(format!(
                "certificate institution (O) {institution} does not match the directory's for user {user_id}"
            )));
        }
        if user.role != role {
            return Err(unauthenticated(format!(
                "certificate role (OU) {role} does not match the directory's for user {user_id}"
            )));
        }
        self.principal_of(user, identity.fingerprint.clone()).await
    }

    /// The principal a directory user acts as, if they are active.
    async fn principal_of(&self, user: User, fingerprint: String) -> Result<Principal, ApiError> {
        if !user.active {
            return Err(unauthenticated(format!("user {} is deactivated", user.id)));
        }
        // A doctor's specialties decide which urgent requests are offered to them.
        let (specialties, on_call) = match user.role {
            Role::Doctor => match self.store.specialist(&user.id).await? {
                Some(specialist) => (specialist.profile.specialties, specialist.profile.on_call),
                None => (Vec::new(), false),
            },
            _ => (Vec::new(), false),
        };
        Ok(Principal {
            user: user.id,
            institution: user.institution,
            role: user.role,
            certificate_fingerprint: fingerprint,
            specialties,
            on_call,
        })
    }

    /// A call from the web console: its session cookie must be signed by this
    /// deployment, name a session that has not ended or expired, of an active user.
    async fn admit_web_session<T>(
        &self,
        request: &Request<T>,
        action: Action,
    ) -> Result<Call, Status> {
        let mut claimed = None;
        let result = self.authenticate_web_session(request, &mut claimed).await;
        match result {
            Ok((principal, session)) => Ok(Call {
                principal,
                action,
                web_session: Some(session),
                store: self.store.clone(),
            }),
            Err(error) => {
                let actor = match &claimed {
                    Some(user) => Actor::from(user),
                    None => Actor::default(),
                };
                let details = json!({
                    "stage": "authenticate",
                    "channel": "console",
                    "reason": error.to_string(),
                });
                Err(self.refuse(actor, action, details, error).await)
            }
        }
    }

    async fn authenticate_web_session<T>(
        &self,
        request: &Request<T>,
        claimed: &mut Option<User>,
    ) -> Result<(Principal, String), ApiError> {
        let Some(key) = &self.sessions else {
            return Err(unauthenticated("this port accepts no web sessions"));
        };
        let cookie = request
            .metadata()
            .get_all("cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(web_session::from_cookie_header)
            .ok_or_else(|| unauthenticated("not signed in: sign in first"))?;
        let id = key
            .verify(cookie)
            .ok_or_else(|| unauthenticated("the session cookie is not valid: sign in again"))?;
        let session = self
            .store
            .web_session(id)
            .await?
            .ok_or_else(|| unauthenticated("unknown session: sign in again"))?;
        let user = self.store.user(&session.user).await?;
        *claimed = user.clone();
        if session.ended_at.is_some() {
            return Err(unauthenticated(
                "the session has been signed out: sign in again",
            ));
        }
        if session.expires_at <= unix_micros(now_micros()) {
            return Err(unauthenticated("the session has expired: sign in again"));
        }
        let Some(user) = user else {
            return Err(unauthenticated(format!(
                "user {} is not in the directory",
                session.user
            )));
        };
        let principal = self.principal_of(user, String::new()).await?;
        Ok((principal, session.id))
    }
}

/// Appends a record that accompanies no change. If even that fails, the log says so;
/// the caller still gets the answer its call deserves.
async fn record(store: &SharedStore, entry: AuditEntry) {
    if let Err(error) = store.append_audit(entry).await {
        tracing::error!(%error, "could not write an audit record");
    }
}

impl Call {
    /// An audit entry for this call's successful change of `target`.
    pub fn audit(&self, target: &AuditTarget) -> AuditEntry {
        self.entry(target, Outcome::Ok)
    }

    /// A record of this call. One made through a console session names the session
    /// (as its sign-in record does), since it has no certificate to name.
    fn entry(&self, target: &AuditTarget, outcome: Outcome) -> AuditEntry {
        let mut entry = AuditEntry::new(
            Actor::from(&self.principal),
            self.action.name(),
            target.label.clone(),
            outcome,
        );
        entry.target_institution = target.institution.as_ref().map(ToString::to_string);
        match &self.web_session {
            Some(session) => entry.details(json!({ "session": web_session::audit_ref(session) })),
            None => entry,
        }
    }

    /// Records the failure and turns it into the caller's status.
    pub async fn refuse(&self, error: impl Into<ApiError>, target: &AuditTarget) -> Status {
        let error = error.into();
        let entry = self
            .entry(target, error.outcome())
            .details(json!({ "reason": error.to_string() }));
        record(&self.store, entry).await;
        error.into()
    }

    /// Passes a result through, recording and converting it if it failed.
    pub async fn check<T, E: Into<ApiError>>(
        &self,
        result: Result<T, E>,
        target: &AuditTarget,
    ) -> Result<T, Status> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => Err(self.refuse(error, target).await),
        }
    }

    /// Asks the policy; a denial is recorded and answered with PERMISSION_DENIED.
    pub async fn authorize(&self, target: &Target, audit: &AuditTarget) -> Result<(), Status> {
        match authorize(&self.principal, self.action, target) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                Err(self.refuse(ApiError::PermissionDenied(reason), audit).await)
            }
        }
    }
}
