//! Every RPC passes the gate: the caller's certificate is matched against the
//! directory (authentication), the policy is asked (authorization), and every refusal
//! is written to the audit log before the caller hears of it.

use serde_json::json;
use tonic::{Request, Status};

use super::error::ApiError;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::auth::tls::Revocations;
use crate::auth::{CertificateIdentity, PeerInfo};
use crate::domain::directory::Role;
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
}

/// An authenticated call in progress.
pub struct Call {
    pub principal: Principal,
    pub action: Action,
    store: SharedStore,
}

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated(message.into())
}

impl Gate {
    pub fn new(store: SharedStore, revocations: Revocations) -> Self {
        Self { store, revocations }
    }

    /// Authenticates the caller of `request` for `action`.
    pub async fn admit<T>(&self, request: &Request<T>, action: Action) -> Result<Call, Status> {
        let peer = request.extensions().get::<PeerInfo>();
        let Some(identity) = peer.and_then(|peer| peer.identity.as_deref()) else {
            // Only reachable if the TLS layer let a connection through without a
            // readable certificate; there is nobody to attribute the refusal to.
            return Err(unauthenticated("a client certificate is required").into());
        };
        match self.authenticate(identity).await {
            Ok(principal) => Ok(Call {
                principal,
                action,
                store: self.store.clone(),
            }),
            Err(error) => {
                let actor = Actor {
                    user: identity.user.clone(),
                    institution: identity.institution.clone(),
                    role: identity.role.clone(),
                    certificate_fingerprint: identity.fingerprint.clone(),
                };
                let entry = AuditEntry::new(actor, action.name(), "-", error.outcome())
                    .details(json!({ "stage": "authenticate", "reason": error.to_string() }));
                record(&self.store, entry).await;
                Err(error.into())
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
        if !user.active {
            return Err(unauthenticated(format!("user {user_id} is deactivated")));
        }
        // A doctor's specialties decide which urgent requests are offered to them.
        let (specialties, on_call) = match role {
            Role::Doctor => match self.store.specialist(&user_id).await? {
                Some(specialist) => (specialist.profile.specialties, specialist.profile.on_call),
                None => (Vec::new(), false),
            },
            _ => (Vec::new(), false),
        };
        Ok(Principal {
            user: user_id,
            institution,
            role,
            certificate_fingerprint: identity.fingerprint.clone(),
            specialties,
            on_call,
        })
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

    fn entry(&self, target: &AuditTarget, outcome: Outcome) -> AuditEntry {
        let mut entry = AuditEntry::new(
            Actor::from(&self.principal),
            self.action.name(),
            target.label.clone(),
            outcome,
        );
        entry.target_institution = target.institution.as_ref().map(ToString::to_string);
        entry
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
