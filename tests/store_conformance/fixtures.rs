//! Building directory values and audit entries for the tests.

use teleconsult::audit::{Actor, AuditEntry, AuditRecord, Outcome};
use teleconsult::domain::directory::{
    Institution, InstitutionKind, Language, Name, Role, ShortText, SlotMinutes, SpecialistProfile,
    User,
};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::store::Store;

pub fn institution_id(id: &str) -> InstitutionId {
    InstitutionId::parse(id).expect("a valid institution id")
}

pub fn user_id(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

pub fn name(text: &str) -> Name {
    Name::parse(text).expect("a valid name")
}

pub fn institution(id: &str, kind: InstitutionKind) -> Institution {
    Institution::new(
        institution_id(id),
        kind,
        name(&format!("{id} 医院")),
        name(&format!("{id} hospital")),
        ShortText::parse("Nagqu").expect("a valid region"),
    )
    .expect("a valid institution")
}

pub fn user(id: &str, institution: &str, role: Role) -> User {
    named_user(
        id,
        institution,
        role,
        &format!("{id} 医生"),
        &format!("{id} person"),
    )
}

pub fn named_user(id: &str, institution: &str, role: Role, name_zh: &str, name_en: &str) -> User {
    User {
        id: user_id(id),
        institution: institution_id(institution),
        role,
        display_name_zh: name(name_zh),
        display_name_en: name(name_en),
        active: true,
    }
}

pub fn profile(user: &str, specialties: &[&str], languages: &[Language]) -> SpecialistProfile {
    SpecialistProfile::new(
        user_id(user),
        specialties
            .iter()
            .map(|s| Specialty::parse(s).expect("a valid specialty"))
            .collect(),
        name("Chief physician"),
        languages.to_vec(),
        true,
        SlotMinutes::parse(45).expect("valid slot minutes"),
    )
    .expect("a valid profile")
}

pub fn admin() -> Actor {
    Actor {
        user: "platform-admin".into(),
        institution: InstitutionId::PLATFORM.into(),
        role: "admin".into(),
        certificate_fingerprint: "ab".repeat(32),
    }
}

/// An entry for `action` on `target`, as the API would write it.
pub fn entry(action: &str, target: &str) -> AuditEntry {
    AuditEntry::new(admin(), action, target, Outcome::Ok)
}

/// The whole audit log.
pub async fn audit_log(store: &dyn Store) -> Vec<AuditRecord> {
    store
        .audit_records(0, 100_000)
        .await
        .expect("reading the audit log")
}

/// Creates a consulting hospital, an inviting clinic and the platform.
pub async fn seed_institutions(store: &dyn Store) {
    for (id, kind) in [
        ("zju2", InstitutionKind::Consulting),
        ("biru-county-hospital", InstitutionKind::Inviting),
        (InstitutionId::PLATFORM, InstitutionKind::Platform),
    ] {
        store
            .create_institution(
                &institution(id, kind),
                entry("directory.create_institution", &format!("institution:{id}")),
            )
            .await
            .expect("creating an institution");
    }
}

pub async fn create_user(store: &dyn Store, user: &User) {
    store
        .create_user(
            user,
            entry("directory.create_user", &format!("user:{}", user.id))
                .target_institution(&user.institution),
        )
        .await
        .expect("creating a user");
}

pub async fn set_profile(store: &dyn Store, profile: &SpecialistProfile) {
    store
        .set_specialist_profile(
            profile,
            entry(
                "directory.set_specialist_profile",
                &format!("user:{}", profile.user_id),
            ),
        )
        .await
        .expect("setting a specialist profile");
}
