//! Who is calling, once their certificate has been verified and matched against the
//! directory.

use super::directory::Role;
use super::ids::{InstitutionId, Specialty, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub institution: InstitutionId,
    pub role: Role,
    /// SHA-256 of the client certificate (DER), lowercase hex.
    pub certificate_fingerprint: String,
    /// A doctor's specialties (from their specialist profile); empty for others.
    pub specialties: Vec<Specialty>,
    /// A doctor in the on-call pool of their specialties.
    pub on_call: bool,
}

impl Principal {
    /// An admin of the `platform` institution: administers every institution.
    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::Admin && self.institution.is_platform()
    }

    pub fn is_admin_of(&self, institution: &InstitutionId) -> bool {
        self.role == Role::Admin && (self.is_platform_admin() || &self.institution == institution)
    }
}
