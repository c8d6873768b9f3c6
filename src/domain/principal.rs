//! Who is calling, once their certificate has been verified and matched against the
//! directory.

use super::directory::Role;
use super::ids::{InstitutionId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub institution: InstitutionId,
    pub role: Role,
    /// SHA-256 of the client certificate (DER), lowercase hex.
    pub certificate_fingerprint: String,
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
