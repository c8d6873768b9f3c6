//! The directory through gRPC: institutions, users and specialists created, changed,
//! listed and searched over mutual TLS, each change with exactly one audit record, and
//! malformed requests refused with the offending field named.

use teleconsult::audit::{AuditRecord, Outcome};
use teleconsult::auth::pki::ClientSubject;
use teleconsult::domain::directory::{Institution, Specialist, User, UserQuery};
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::helpers::{TestApp, fixture};

type Client = DirectoryServiceClient<Channel>;

const PLATFORM_ADMIN: &str = "platform-admin";
const BIRU_ADMIN: &str = "biru-admin";
const ZJU2_ADMIN: &str = "zju2-admin";
const BIRU: &str = "biru-county-hospital";
const ZJU2: &str = "zju2-hospital";

// Audit and state checks, shared with `authorization.rs`.

/// The seq of the newest audit record.
pub async fn audit_head(app: &TestApp) -> u64 {
    app.audit_records().await.last().map_or(0, |r| r.seq)
}

/// The records appended after `seq`.
pub async fn audit_since(app: &TestApp, seq: u64) -> Vec<AuditRecord> {
    app.store.audit_records(seq, u32::MAX).await.unwrap()
}

/// What one audit record should say.
pub struct Audited<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub target_institution: Option<&'a str>,
    pub outcome: Outcome,
}

impl Audited<'_> {
    /// Whether `records` is exactly this one record; `Err` says how it differs.
    pub fn check(&self, records: &[AuditRecord]) -> Result<(), String> {
        let [record] = records else {
            return Err(format!(
                "expected one audit record, found {}: {records:#?}",
                records.len()
            ));
        };
        let entry = &record.entry;
        let found = (
            entry.actor.user.as_str(),
            entry.action.as_str(),
            entry.target.as_str(),
            entry.target_institution.as_deref(),
            entry.outcome,
        );
        let wanted = (
            self.actor,
            self.action,
            self.target,
            self.target_institution,
            self.outcome,
        );
        if found == wanted {
            Ok(())
        } else {
            Err(format!(
                "audit record (actor, action, target, target institution, outcome) \
                 is {found:?}, expected {wanted:?}"
            ))
        }
    }

    /// Asserts that the only record appended after `since` is this one; returns its seq.
    pub async fn is_the_only_record_since(&self, app: &TestApp, since: u64) -> u64 {
        let records = audit_since(app, since).await;
        if let Err(problem) = self.check(&records) {
            panic!("{problem}");
        }
        records[0].seq
    }
}

/// Everything the directory holds, to show that a refused call changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct DirectorySnapshot {
    institutions: Vec<Institution>,
    users: Vec<User>,
    specialists: Vec<Specialist>,
}

pub async fn directory_snapshot(app: &TestApp) -> DirectorySnapshot {
    let institutions = app.store.institutions(None).await.unwrap();
    let everyone = UserQuery {
        include_inactive: true,
        ..UserQuery::default()
    };
    let users = app.store.users(&everyone).await.unwrap();
    let mut specialists = Vec::new();
    for user in &users {
        specialists.extend(app.store.specialist(&user.id).await.unwrap());
    }
    DirectorySnapshot {
        institutions,
        users,
        specialists,
    }
}

pub async fn assert_chain_intact(app: &TestApp) {
    let report = app.store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

// Request builders.

fn institution(id: &str, kind: pb::InstitutionKind) -> pb::Institution {
    pb::Institution {
        id: id.into(),
        kind: kind as i32,
        name_zh: "嘉黎县人民医院".into(),
        name_en: "Lhari County People's Hospital".into(),
        region: "Lhari County, Nagqu, Tibet".into(),
    }
}

fn user(id: &str, institution: &str, role: pb::Role) -> pb::User {
    pb::User {
        id: id.into(),
        institution_id: institution.into(),
        role: role as i32,
        display_name_zh: "白玛".into(),
        display_name_en: "Pema".into(),
        active: true,
    }
}

fn create_user(user: pb::User) -> pb::CreateUserRequest {
    pb::CreateUserRequest { user: Some(user) }
}

fn profile(user_id: &str) -> pb::Specialist {
    pb::Specialist {
        user_id: user_id.into(),
        specialties: vec!["ophthalmology".into()],
        title: "chief physician".into(),
        languages: vec![pb::Language::Mandarin as i32],
        slot_minutes: 30,
        ..pb::Specialist::default()
    }
}

fn set_profile(specialist: pb::Specialist) -> pb::SetSpecialistProfileRequest {
    pb::SetSpecialistProfileRequest {
        specialist: Some(specialist),
    }
}

async fn get_user(client: &mut Client, id: &str) -> Result<pb::User, Status> {
    let request = pb::GetUserRequest { id: id.into() };
    client.get_user(request).await.map(|r| r.into_inner())
}

async fn institution_ids(client: &mut Client, kind: pb::InstitutionKind) -> Vec<String> {
    let request = pb::ListInstitutionsRequest { kind: kind as i32 };
    let response = client.list_institutions(request).await.unwrap();
    response
        .into_inner()
        .institutions
        .into_iter()
        .map(|i| i.id)
        .collect()
}

async fn user_ids(client: &mut Client, request: pb::ListUsersRequest) -> Vec<String> {
    let response = client.list_users(request).await.unwrap();
    response
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect()
}

async fn specialist_ids(client: &mut Client, request: pb::SearchSpecialistsRequest) -> Vec<String> {
    let response = client.search_specialists(request).await.unwrap();
    let response = response.into_inner();
    assert_eq!(response.next_page_token, "", "expected a single page");
    response
        .specialists
        .into_iter()
        .map(|s| s.user_id)
        .collect()
}

fn assert_refused(status: &Status, code: Code, mentions: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for word in mentions {
        assert!(status.message().contains(word), "{word:?} in {status:?}");
    }
}

#[tokio::test]
async fn platform_admins_create_institutions_that_everyone_can_read() {
    let app = TestApp::spawn().await;
    let mut admin = app.directory_as(PLATFORM_ADMIN);
    let lhari = institution("lhari-county-hospital", pb::InstitutionKind::Inviting);

    let since = audit_head(&app).await;
    let request = pb::CreateInstitutionRequest {
        institution: Some(lhari.clone()),
    };
    let created = admin
        .create_institution(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created, lhari);
    let created_at = Audited {
        actor: PLATFORM_ADMIN,
        action: "directory.create_institution",
        target: "institution:lhari-county-hospital",
        target_institution: Some("lhari-county-hospital"),
        outcome: Outcome::Ok,
    }
    .is_the_only_record_since(&app, since)
    .await;

    let mut nurse = app.directory_as("biru-nurse-dawa");
    let request = pb::GetInstitutionRequest {
        id: lhari.id.clone(),
    };
    let read = nurse.get_institution(request).await.unwrap().into_inner();
    assert_eq!(read, lhari);

    use pb::InstitutionKind::*;
    assert_eq!(
        institution_ids(&mut nurse, Inviting).await,
        [BIRU, "lhari-county-hospital", "nagqu-peoples"]
    );
    assert_eq!(
        institution_ids(&mut nurse, Consulting).await,
        ["zj-provincial", ZJU2]
    );
    assert_eq!(institution_ids(&mut nurse, Platform).await, ["platform"]);
    assert_eq!(
        institution_ids(&mut nurse, Unspecified).await,
        [
            BIRU,
            "lhari-county-hospital",
            "nagqu-peoples",
            "platform",
            "zj-provincial",
            ZJU2
        ]
    );
    // Reads that succeed are not audited.
    assert!(audit_since(&app, created_at).await.is_empty());

    let before = directory_snapshot(&app).await;
    let again = pb::CreateInstitutionRequest {
        institution: Some(pb::Institution {
            name_en: "Another name".into(),
            ..lhari.clone()
        }),
    };
    let status = admin.create_institution(again).await.unwrap_err();
    assert_refused(&status, Code::AlreadyExists, &["lhari-county-hospital"]);
    let unknown = pb::GetInstitutionRequest {
        id: "no-such-hospital".into(),
    };
    let status = nurse.get_institution(unknown).await.unwrap_err();
    assert_refused(&status, Code::NotFound, &["no-such-hospital"]);
    assert_eq!(directory_snapshot(&app).await, before);
    let refusals = audit_since(&app, created_at).await;
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(refusals.iter().all(|r| r.entry.outcome == Outcome::Invalid));

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn update_institution_keeps_the_fields_it_does_not_set() {
    let app = TestApp::spawn().await;
    let mut biru_admin = app.directory_as(BIRU_ADMIN);
    let original = biru_admin
        .get_institution(pb::GetInstitutionRequest { id: BIRU.into() })
        .await
        .unwrap()
        .into_inner();

    let since = audit_head(&app).await;
    let request = pb::UpdateInstitutionRequest {
        id: BIRU.into(),
        name_en: Some("Biru County Hospital".into()),
        ..Default::default()
    };
    let renamed = biru_admin.update_institution(request).await.unwrap();
    let renamed = renamed.into_inner();
    let expected = pb::Institution {
        name_en: "Biru County Hospital".into(),
        ..original.clone()
    };
    assert_eq!(renamed, expected);
    let audited = Audited {
        actor: BIRU_ADMIN,
        action: "directory.update_institution",
        target: "institution:biru-county-hospital",
        target_institution: Some(BIRU),
        outcome: Outcome::Ok,
    };
    let since = audited.is_the_only_record_since(&app, since).await;

    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let request = pb::UpdateInstitutionRequest {
        id: BIRU.into(),
        region: Some("Biru, Nagqu".into()),
        ..Default::default()
    };
    let moved = platform.update_institution(request).await.unwrap();
    let expected = pb::Institution {
        region: "Biru, Nagqu".into(),
        ..expected
    };
    assert_eq!(moved.into_inner(), expected);
    let since = Audited {
        actor: PLATFORM_ADMIN,
        ..audited
    }
    .is_the_only_record_since(&app, since)
    .await;
    let read = platform
        .get_institution(pb::GetInstitutionRequest { id: BIRU.into() })
        .await
        .unwrap();
    assert_eq!(read.into_inner(), expected);

    let before = directory_snapshot(&app).await;
    let unknown = pb::UpdateInstitutionRequest {
        id: "no-such-hospital".into(),
        name_en: Some("Nowhere".into()),
        ..Default::default()
    };
    let status = platform.update_institution(unknown).await.unwrap_err();
    assert_refused(&status, Code::NotFound, &["no-such-hospital"]);
    assert_eq!(directory_snapshot(&app).await, before);
    Audited {
        actor: PLATFORM_ADMIN,
        action: "directory.update_institution",
        target: "institution:no-such-hospital",
        target_institution: Some("no-such-hospital"),
        outcome: Outcome::Invalid,
    }
    .is_the_only_record_since(&app, since)
    .await;

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn an_institution_admin_creates_users_in_their_institution() {
    let app = TestApp::spawn().await;
    let mut biru_admin = app.directory_as(BIRU_ADMIN);
    let mut pema = user("biru-nurse-pema", BIRU, pb::Role::ClinicStaff);
    // The new user is active whatever the request says.
    pema.active = false;

    let since = audit_head(&app).await;
    let created = biru_admin.create_user(create_user(pema.clone())).await;
    let created = created.unwrap().into_inner();
    pema.active = true;
    assert_eq!(created, pema);
    let since = Audited {
        actor: BIRU_ADMIN,
        action: "directory.create_user",
        target: "user:biru-nurse-pema",
        target_institution: Some(BIRU),
        outcome: Outcome::Ok,
    }
    .is_the_only_record_since(&app, since)
    .await;
    assert_eq!(get_user(&mut biru_admin, &pema.id).await.unwrap(), pema);

    // The new user can call at once with a certificate for the directory's claims.
    let certificate = app.certificate(&ClientSubject {
        user: pema.id.clone(),
        institution: BIRU.into(),
        role: "clinic_staff".into(),
    });
    let mut as_pema = DirectoryServiceClient::new(app.channel_with(&certificate));
    let me = as_pema.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    assert_eq!(me.into_inner().user, Some(pema.clone()));
    assert!(audit_since(&app, since).await.is_empty());

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn create_user_refuses_duplicates_misplaced_roles_and_unknown_institutions() {
    let app = TestApp::spawn().await;
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let before = directory_snapshot(&app).await;

    // Ids are unique across the directory, not only within an institution.
    let duplicates = [
        (
            BIRU_ADMIN,
            user("biru-nurse-dawa", BIRU, pb::Role::ClinicStaff),
        ),
        (
            PLATFORM_ADMIN,
            user("biru-nurse-dawa", "nagqu-peoples", pb::Role::ClinicStaff),
        ),
    ];
    for (actor, duplicate) in duplicates {
        let since = audit_head(&app).await;
        let institution = duplicate.institution_id.clone();
        let status = app
            .directory_as(actor)
            .create_user(create_user(duplicate))
            .await
            .unwrap_err();
        assert_refused(&status, Code::AlreadyExists, &["biru-nurse-dawa"]);
        Audited {
            actor,
            action: "directory.create_user",
            target: "user:biru-nurse-dawa",
            target_institution: Some(&institution),
            outcome: Outcome::Invalid,
        }
        .is_the_only_record_since(&app, since)
        .await;
    }
    let dawa = get_user(&mut platform, "biru-nurse-dawa").await.unwrap();
    assert_eq!(
        (dawa.institution_id.as_str(), dawa.display_name_en.as_str()),
        (BIRU, "Dawa")
    );

    // Clinic staff work for inviting institutions, doctors for consulting ones, and
    // only admins for the platform.
    let misplaced = [
        (
            ZJU2_ADMIN,
            user("zju2-nurse-wu", ZJU2, pb::Role::ClinicStaff),
            ["clinic_staff", "consulting"],
        ),
        (
            BIRU_ADMIN,
            user("biru-doctor-tashi", BIRU, pb::Role::Doctor),
            ["doctor", "inviting"],
        ),
        (
            PLATFORM_ADMIN,
            user("platform-interpreter", "platform", pb::Role::Interpreter),
            ["interpreter", "platform"],
        ),
    ];
    for (actor, misplaced, mentions) in misplaced {
        let since = audit_head(&app).await;
        let (id, institution) = (misplaced.id.clone(), misplaced.institution_id.clone());
        let status = app
            .directory_as(actor)
            .create_user(create_user(misplaced))
            .await
            .unwrap_err();
        assert_refused(&status, Code::FailedPrecondition, &mentions);
        let target = format!("user:{id}");
        Audited {
            actor,
            action: "directory.create_user",
            target: &target,
            target_institution: Some(&institution),
            outcome: Outcome::Invalid,
        }
        .is_the_only_record_since(&app, since)
        .await;
        let status = get_user(&mut platform, &id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id}: {status:?}");
    }

    let since = audit_head(&app).await;
    let homeless = user("lost-nurse", "no-such-hospital", pb::Role::ClinicStaff);
    let status = platform.create_user(create_user(homeless)).await;
    assert_refused(&status.unwrap_err(), Code::NotFound, &["no-such-hospital"]);
    Audited {
        actor: PLATFORM_ADMIN,
        action: "directory.create_user",
        target: "user:lost-nurse",
        target_institution: Some("no-such-hospital"),
        outcome: Outcome::Invalid,
    }
    .is_the_only_record_since(&app, since)
    .await;

    assert_eq!(directory_snapshot(&app).await, before);
    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn update_user_keeps_the_fields_it_does_not_set() {
    let app = TestApp::spawn().await;
    let mut biru_admin = app.directory_as(BIRU_ADMIN);
    let norbu = "biru-interpreter-norbu";
    let original = get_user(&mut biru_admin, norbu).await.unwrap();
    let audited = Audited {
        actor: BIRU_ADMIN,
        action: "directory.update_user",
        target: "user:biru-interpreter-norbu",
        target_institution: Some(BIRU),
        outcome: Outcome::Ok,
    };

    let since = audit_head(&app).await;
    let request = pb::UpdateUserRequest {
        id: norbu.into(),
        display_name_en: Some("Norbu Tsering".into()),
        ..Default::default()
    };
    let renamed = biru_admin.update_user(request).await.unwrap().into_inner();
    let expected = pb::User {
        display_name_en: "Norbu Tsering".into(),
        ..original
    };
    assert_eq!(renamed, expected);
    let since = audited.is_the_only_record_since(&app, since).await;

    let request = pb::UpdateUserRequest {
        id: norbu.into(),
        display_name_zh: Some("诺布次仁".into()),
        ..Default::default()
    };
    let renamed = biru_admin.update_user(request).await.unwrap().into_inner();
    let expected = pb::User {
        display_name_zh: "诺布次仁".into(),
        ..expected
    };
    assert_eq!(renamed, expected);
    let since = audited.is_the_only_record_since(&app, since).await;

    // Deactivation keeps the names and locks the user out at their next call.
    let mut as_norbu = app.directory_as(norbu);
    as_norbu.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    let request = pb::UpdateUserRequest {
        id: norbu.into(),
        active: Some(false),
        ..Default::default()
    };
    let deactivated = biru_admin.update_user(request).await.unwrap().into_inner();
    let expected = pb::User {
        active: false,
        ..expected
    };
    assert_eq!(deactivated, expected);
    audited.is_the_only_record_since(&app, since).await;
    let status = as_norbu.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_refused(&status, Code::Unauthenticated, &["deactivated"]);
    assert_eq!(get_user(&mut biru_admin, norbu).await.unwrap(), expected);

    let since = audit_head(&app).await;
    let request = pb::UpdateUserRequest {
        id: norbu.into(),
        active: Some(true),
        ..Default::default()
    };
    let reactivated = biru_admin.update_user(request).await.unwrap().into_inner();
    assert!(reactivated.active);
    let since = audited.is_the_only_record_since(&app, since).await;
    as_norbu.who_am_i(pb::WhoAmIRequest {}).await.unwrap();

    let before = directory_snapshot(&app).await;
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let unknown = pb::UpdateUserRequest {
        id: "no-such-user".into(),
        active: Some(false),
        ..Default::default()
    };
    let status = platform.update_user(unknown).await.unwrap_err();
    assert_refused(&status, Code::NotFound, &["no-such-user"]);
    Audited {
        actor: PLATFORM_ADMIN,
        action: "directory.update_user",
        target: "user:no-such-user",
        target_institution: None,
        outcome: Outcome::Invalid,
    }
    .is_the_only_record_since(&app, since)
    .await;
    assert_eq!(directory_snapshot(&app).await, before);

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn list_users_filters_by_institution_role_and_activity() {
    let app = TestApp::spawn().await;
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let list = |institution: &str, role: pb::Role, include_inactive: bool| pb::ListUsersRequest {
        institution_id: institution.into(),
        role: role as i32,
        include_inactive,
    };
    use pb::Role::*;

    let everyone = user_ids(&mut platform, list("", Unspecified, false)).await;
    let mut fixture: Vec<String> = fixture().users.iter().map(|u| u.id.to_string()).collect();
    fixture.sort();
    assert_eq!(everyone, fixture);
    assert_eq!(
        user_ids(&mut platform, list(ZJU2, Unspecified, false)).await,
        [ZJU2_ADMIN, "zju2-cardio-chen", "zju2-eye-zhou"]
    );
    assert_eq!(
        user_ids(&mut platform, list("", Doctor, false)).await,
        ["zjpph-altitude-li", "zju2-cardio-chen", "zju2-eye-zhou"]
    );
    assert_eq!(
        user_ids(&mut platform, list(BIRU, Interpreter, false)).await,
        ["biru-interpreter-norbu"]
    );
    assert_eq!(
        user_ids(&mut platform, list("", Admin, false)).await,
        [BIRU_ADMIN, PLATFORM_ADMIN, ZJU2_ADMIN]
    );
    assert!(
        user_ids(&mut platform, list("nagqu-peoples", Doctor, false))
            .await
            .is_empty()
    );

    let mut biru_admin = app.directory_as(BIRU_ADMIN);
    let biru = [BIRU_ADMIN, "biru-interpreter-norbu", "biru-nurse-dawa"];
    assert_eq!(
        user_ids(&mut biru_admin, list(BIRU, Unspecified, false)).await,
        biru
    );

    let request = pb::UpdateUserRequest {
        id: "biru-nurse-dawa".into(),
        active: Some(false),
        ..Default::default()
    };
    biru_admin.update_user(request).await.unwrap();
    assert_eq!(
        user_ids(&mut biru_admin, list(BIRU, Unspecified, false)).await,
        [BIRU_ADMIN, "biru-interpreter-norbu"]
    );
    assert_eq!(
        user_ids(&mut biru_admin, list(BIRU, Unspecified, true)).await,
        biru
    );
    assert_eq!(
        user_ids(&mut biru_admin, list(BIRU, ClinicStaff, true)).await,
        ["biru-nurse-dawa"]
    );

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn a_doctor_given_a_specialist_profile_is_found_by_it() {
    let app = TestApp::spawn().await;
    let mut zju2_admin = app.directory_as(ZJU2_ADMIN);
    let mut nurse = app.directory_as("biru-nurse-dawa");
    let search = |specialty: &str, language: pb::Language| pb::SearchSpecialistsRequest {
        specialty: specialty.into(),
        language: language as i32,
        ..Default::default()
    };

    let since = audit_head(&app).await;
    let zhou = pb::Specialist {
        specialties: vec!["ophthalmology".into(), "high-altitude-retinopathy".into()],
        languages: vec![pb::Language::Tibetan as i32, pb::Language::Mandarin as i32],
        on_call: true,
        slot_minutes: 45,
        ..profile("zju2-eye-zhou")
    };
    let set = zju2_admin.set_specialist_profile(set_profile(zhou)).await;
    let set = set.unwrap().into_inner();
    let expected = pb::Specialist {
        user_id: "zju2-eye-zhou".into(),
        institution_id: ZJU2.into(),
        display_name_zh: "周颖".into(),
        display_name_en: "Zhou Ying".into(),
        // Sorted, as the directory keeps them.
        specialties: vec!["high-altitude-retinopathy".into(), "ophthalmology".into()],
        title: "chief physician".into(),
        languages: vec![pb::Language::Mandarin as i32, pb::Language::Tibetan as i32],
        on_call: true,
        slot_minutes: 45,
    };
    assert_eq!(set, expected);
    let audited = Audited {
        actor: ZJU2_ADMIN,
        action: "directory.set_specialist_profile",
        target: "user:zju2-eye-zhou",
        target_institution: Some(ZJU2),
        outcome: Outcome::Ok,
    };
    let since = audited.is_the_only_record_since(&app, since).await;

    let request = pb::GetSpecialistRequest {
        user_id: "zju2-eye-zhou".into(),
    };
    let read = nurse.get_specialist(request).await.unwrap().into_inner();
    assert_eq!(read, expected);
    let unspecified = pb::Language::Unspecified;
    assert_eq!(
        specialist_ids(&mut nurse, search("high-altitude-retinopathy", unspecified)).await,
        ["zju2-eye-zhou"]
    );
    assert_eq!(
        specialist_ids(&mut nurse, search("", pb::Language::Tibetan)).await,
        ["zjpph-altitude-li", "zju2-eye-zhou"]
    );

    // Setting a profile replaces it; slot_minutes 0 means the default.
    let replacement = pb::Specialist {
        slot_minutes: 0,
        ..profile("zju2-eye-zhou")
    };
    let set = zju2_admin
        .set_specialist_profile(set_profile(replacement))
        .await;
    let set = set.unwrap().into_inner();
    assert_eq!(
        (
            set.specialties,
            set.languages,
            set.slot_minutes,
            set.on_call
        ),
        (
            vec!["ophthalmology".to_owned()],
            vec![pb::Language::Mandarin as i32],
            30,
            false
        )
    );
    audited.is_the_only_record_since(&app, since).await;
    assert!(
        specialist_ids(&mut nurse, search("high-altitude-retinopathy", unspecified))
            .await
            .is_empty()
    );

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn only_doctors_have_specialist_profiles() {
    let app = TestApp::spawn().await;
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let before = directory_snapshot(&app).await;

    for (id, institution, role) in [
        ("biru-nurse-dawa", BIRU, "clinic_staff"),
        ("biru-interpreter-norbu", BIRU, "interpreter"),
        (ZJU2_ADMIN, ZJU2, "admin"),
    ] {
        let since = audit_head(&app).await;
        let status = platform
            .set_specialist_profile(set_profile(profile(id)))
            .await;
        assert_refused(
            &status.unwrap_err(),
            Code::FailedPrecondition,
            &[id, role, "not a doctor"],
        );
        let target = format!("user:{id}");
        Audited {
            actor: PLATFORM_ADMIN,
            action: "directory.set_specialist_profile",
            target: &target,
            target_institution: Some(institution),
            outcome: Outcome::Invalid,
        }
        .is_the_only_record_since(&app, since)
        .await;
        let request = pb::GetSpecialistRequest { user_id: id.into() };
        let status = platform.get_specialist(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id}: {status:?}");
    }

    let status = platform
        .set_specialist_profile(set_profile(profile("no-such-doctor")))
        .await
        .unwrap_err();
    assert_refused(&status, Code::NotFound, &["no-such-doctor"]);

    assert_eq!(directory_snapshot(&app).await, before);
    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn search_specialists_combines_its_filters() {
    let app = TestApp::spawn().await;
    let mut nurse = app.directory_as("nagqu-nurse-drolma");
    let query = |specialty: &str, institution: &str, language: pb::Language, name: &str| {
        pb::SearchSpecialistsRequest {
            specialty: specialty.into(),
            institution_id: institution.into(),
            language: language as i32,
            name_contains: name.into(),
            page: None,
        }
    };
    use pb::Language::*;
    let (chen, zhou, li) = ("zju2-cardio-chen", "zju2-eye-zhou", "zjpph-altitude-li");
    let since = audit_head(&app).await;

    let cases: &[(pb::SearchSpecialistsRequest, &[&str])] = &[
        (query("", "", Unspecified, ""), &[li, chen, zhou]),
        (query("cardiology", "", Unspecified, ""), &[li, chen]),
        (query("", ZJU2, Unspecified, ""), &[chen, zhou]),
        (query("cardiology", ZJU2, Unspecified, ""), &[chen]),
        (query("", "", Tibetan, ""), &[li]),
        (query("", "", English, ""), &[chen]),
        (query("", "", Mandarin, ""), &[li, chen, zhou]),
        (query("cardiology", "", Tibetan, ""), &[li]),
        (query("", "", Unspecified, "chen"), &[chen]),
        (query("", "", Unspecified, "CHEN"), &[chen]),
        (query("", "", Unspecified, "  Ming "), &[chen]),
        (query("", "", Unspecified, "陈"), &[chen]),
        (query("", "", Unspecified, "李强"), &[li]),
        (query("", "zj-provincial", Unspecified, "chen"), &[]),
        (query("dermatology", "", Unspecified, ""), &[]),
        (query("", BIRU, Unspecified, ""), &[]),
        (query("", "no-such-hospital", Unspecified, ""), &[]),
    ];
    for (request, expected) in cases {
        let found = specialist_ids(&mut nurse, request.clone()).await;
        assert_eq!(found, *expected, "{request:?}");
    }
    let all = nurse
        .search_specialists(query("", "", Unspecified, ""))
        .await;
    let eye = all.unwrap().into_inner().specialists.remove(2);
    assert_eq!(
        (
            eye.user_id.as_str(),
            eye.institution_id.as_str(),
            eye.title.as_str()
        ),
        (zhou, ZJU2, "associate chief physician")
    );
    assert_eq!(eye.specialties, ["ophthalmology"]);
    // Searching is reading: nothing is audited.
    assert!(audit_since(&app, since).await.is_empty());

    // A deactivated doctor is no longer offered to clinics.
    let request = pb::UpdateUserRequest {
        id: zhou.into(),
        active: Some(false),
        ..Default::default()
    };
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    platform.update_user(request).await.unwrap();
    let found = specialist_ids(&mut nurse, query("", ZJU2, Unspecified, "")).await;
    assert_eq!(found, [chen]);

    assert_chain_intact(&app).await;
}

#[tokio::test]
async fn pages_of_one_visit_every_specialist_exactly_once() {
    let app = TestApp::spawn().await;
    let mut nurse = app.directory_as("biru-nurse-dawa");
    let everyone = specialist_ids(&mut nurse, Default::default()).await;
    assert_eq!(everyone.len(), 3);

    for (page_size, specialty) in [(1, ""), (2, ""), (1, "cardiology"), (3, "")] {
        let unpaged = pb::SearchSpecialistsRequest {
            specialty: specialty.into(),
            ..Default::default()
        };
        let expected = specialist_ids(&mut nurse, unpaged.clone()).await;
        let mut visited: Vec<String> = Vec::new();
        let mut page_token = String::new();
        for _ in 0..=expected.len() + 1 {
            let request = pb::SearchSpecialistsRequest {
                page: Some(pb::PageRequest {
                    page_size,
                    page_token: page_token.clone(),
                }),
                ..unpaged.clone()
            };
            let page = nurse
                .search_specialists(request)
                .await
                .unwrap()
                .into_inner();
            assert!(page.specialists.len() <= page_size as usize);
            visited.extend(page.specialists.into_iter().map(|s| s.user_id));
            page_token = page.next_page_token;
            if page_token.is_empty() {
                break;
            }
        }
        assert!(page_token.is_empty(), "paging does not end: {visited:?}");
        assert_eq!(visited, expected, "page size {page_size}, {specialty:?}");
    }

    // A token past the last specialist is an empty last page.
    let request = pb::SearchSpecialistsRequest {
        page: Some(pb::PageRequest {
            page_size: 1,
            page_token: "zzz".into(),
        }),
        ..Default::default()
    };
    let page = nurse
        .search_specialists(request)
        .await
        .unwrap()
        .into_inner();
    assert!(page.specialists.is_empty());
    assert_eq!(page.next_page_token, "");
}

/// A request that breaks one rule of its message.
enum Malformed {
    GetInstitution(pb::GetInstitutionRequest),
    ListInstitutions(pb::ListInstitutionsRequest),
    CreateInstitution(pb::CreateInstitutionRequest),
    UpdateInstitution(pb::UpdateInstitutionRequest),
    GetUser(pb::GetUserRequest),
    ListUsers(pb::ListUsersRequest),
    CreateUser(pb::CreateUserRequest),
    UpdateUser(pb::UpdateUserRequest),
    SetSpecialistProfile(pb::SetSpecialistProfileRequest),
    GetSpecialist(pb::GetSpecialistRequest),
    SearchSpecialists(pb::SearchSpecialistsRequest),
}

impl Malformed {
    fn action(&self) -> &'static str {
        match self {
            Malformed::GetInstitution(_) => "directory.get_institution",
            Malformed::ListInstitutions(_) => "directory.list_institutions",
            Malformed::CreateInstitution(_) => "directory.create_institution",
            Malformed::UpdateInstitution(_) => "directory.update_institution",
            Malformed::GetUser(_) => "directory.get_user",
            Malformed::ListUsers(_) => "directory.list_users",
            Malformed::CreateUser(_) => "directory.create_user",
            Malformed::UpdateUser(_) => "directory.update_user",
            Malformed::SetSpecialistProfile(_) => "directory.set_specialist_profile",
            Malformed::GetSpecialist(_) => "directory.get_specialist",
            Malformed::SearchSpecialists(_) => "directory.search_specialists",
        }
    }

    async fn send(self, client: &mut Client) -> Result<(), Status> {
        match self {
            Malformed::GetInstitution(r) => client.get_institution(r).await.map(drop),
            Malformed::ListInstitutions(r) => client.list_institutions(r).await.map(drop),
            Malformed::CreateInstitution(r) => client.create_institution(r).await.map(drop),
            Malformed::UpdateInstitution(r) => client.update_institution(r).await.map(drop),
            Malformed::GetUser(r) => client.get_user(r).await.map(drop),
            Malformed::ListUsers(r) => client.list_users(r).await.map(drop),
            Malformed::CreateUser(r) => client.create_user(r).await.map(drop),
            Malformed::UpdateUser(r) => client.update_user(r).await.map(drop),
            Malformed::SetSpecialistProfile(r) => client.set_specialist_profile(r).await.map(drop),
            Malformed::GetSpecialist(r) => client.get_specialist(r).await.map(drop),
            Malformed::SearchSpecialists(r) => client.search_specialists(r).await.map(drop),
        }
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_naming_the_field() {
    use Malformed as M;
    let long = "x".repeat(300);
    let kind = pb::InstitutionKind::Inviting;
    let new_user = |change: fn(&mut pb::User)| {
        let mut user = user("biru-nurse-pema", BIRU, pb::Role::ClinicStaff);
        change(&mut user);
        M::CreateUser(create_user(user))
    };
    let new_institution = |change: &dyn Fn(&mut pb::Institution)| {
        let mut institution = institution("lhari-county-hospital", kind);
        change(&mut institution);
        M::CreateInstitution(pb::CreateInstitutionRequest {
            institution: Some(institution),
        })
    };
    let zhou_profile = |change: fn(&mut pb::Specialist)| {
        let mut specialist = profile("zju2-eye-zhou");
        change(&mut specialist);
        M::SetSpecialistProfile(set_profile(specialist))
    };
    let page = |page_size, page_token: &str| {
        Some(pb::PageRequest {
            page_size,
            page_token: page_token.into(),
        })
    };
    let search = |change: &dyn Fn(&mut pb::SearchSpecialistsRequest)| {
        let mut request = pb::SearchSpecialistsRequest::default();
        change(&mut request);
        M::SearchSpecialists(request)
    };
    let update_user = |id: &str, change: &dyn Fn(&mut pb::UpdateUserRequest)| {
        let mut request = pb::UpdateUserRequest {
            id: id.into(),
            ..Default::default()
        };
        change(&mut request);
        request
    };
    let update_institution = |id: &str, change: &dyn Fn(&mut pb::UpdateInstitutionRequest)| {
        let mut request = pb::UpdateInstitutionRequest {
            id: id.into(),
            ..Default::default()
        };
        change(&mut request);
        request
    };
    let text = |value: &str| Some(value.to_owned());
    #[rustfmt::skip]
    let cases: Vec<(&str, Malformed)> = vec![
        ("id",                        M::GetInstitution(pb::GetInstitutionRequest { id: "".into() })),
        ("id",                        M::GetInstitution(pb::GetInstitutionRequest { id: "Upper Case".into() })),
        ("kind",                      M::ListInstitutions(pb::ListInstitutionsRequest { kind: 99 })),
        ("institution",               M::CreateInstitution(pb::CreateInstitutionRequest { institution: None })),
        ("institution.id",            new_institution(&|i| i.id = "Upper Case".into())),
        ("institution.id",            new_institution(&|i| i.id = "".into())),
        ("institution.kind",          new_institution(&|i| i.kind = 99)),
        ("institution.kind",          new_institution(&|i| i.kind = 0)),
        ("institution.kind",          new_institution(&|i| i.kind = pb::InstitutionKind::Platform as i32)),
        ("institution.name_zh",       new_institution(&|i| i.name_zh = "医".repeat(201))),
        ("institution.name_en",       new_institution(&|i| i.name_en = long.clone())),
        ("institution.name_en",       new_institution(&|i| i.name_en = "  ".into())),
        ("institution.region",        new_institution(&|i| i.region = long.clone())),
        ("id",                        M::UpdateInstitution(update_institution("", &|_| {}))),
        ("name_en",                   M::UpdateInstitution(update_institution(BIRU, &|u| u.name_en = text(&long)))),
        ("name_zh",                   M::UpdateInstitution(update_institution(BIRU, &|u| u.name_zh = text("")))),
        ("id",                        M::GetUser(pb::GetUserRequest { id: "".into() })),
        ("id",                        M::GetUser(pb::GetUserRequest { id: "a/b".into() })),
        ("institution_id",            M::ListUsers(pb::ListUsersRequest { institution_id: "Not An Id".into(), ..Default::default() })),
        ("role",                      M::ListUsers(pb::ListUsersRequest { role: 99, ..Default::default() })),
        ("user",                      M::CreateUser(pb::CreateUserRequest { user: None })),
        ("user.id",                   new_user(|u| u.id = "".into())),
        ("user.id",                   new_user(|u| u.id = "Upper Case".into())),
        ("user.id",                   new_user(|u| u.id = "x".repeat(65))),
        ("user.institution_id",       new_user(|u| u.institution_id = "".into())),
        ("user.role",                 new_user(|u| u.role = 99)),
        ("user.role",                 new_user(|u| u.role = 0)),
        ("user.display_name_zh",      new_user(|u| u.display_name_zh = " \t ".into())),
        ("user.display_name_en",      new_user(|u| u.display_name_en = "x".repeat(300))),
        ("user.display_name_en",      new_user(|u| u.display_name_en = "Pema\u{7}".into())),
        ("id",                        M::UpdateUser(update_user("Upper Case", &|_| {}))),
        ("display_name_en",           M::UpdateUser(update_user("biru-nurse-dawa", &|u| u.display_name_en = text(&long)))),
        ("display_name_zh",           M::UpdateUser(update_user("biru-nurse-dawa", &|u| u.display_name_zh = text("")))),
        ("specialist",                M::SetSpecialistProfile(pb::SetSpecialistProfileRequest { specialist: None })),
        ("specialist.user_id",        zhou_profile(|s| s.user_id = "".into())),
        ("specialist.specialties",    zhou_profile(|s| s.specialties.clear())),
        ("specialist.specialties",    zhou_profile(|s| s.specialties = (0..17).map(|i| format!("specialty-{i}")).collect())),
        ("specialist.specialties[1]", zhou_profile(|s| s.specialties.push("Retina".into()))),
        ("specialist.languages",      zhou_profile(|s| s.languages.clear())),
        ("specialist.languages[0]",   zhou_profile(|s| s.languages = vec![99])),
        ("specialist.languages[1]",   zhou_profile(|s| s.languages.push(0))),
        ("specialist.title",          zhou_profile(|s| s.title = "".into())),
        ("specialist.slot_minutes",   zhou_profile(|s| s.slot_minutes = 500)),
        ("specialist.slot_minutes",   zhou_profile(|s| s.slot_minutes = 3)),
        ("user_id",                   M::GetSpecialist(pb::GetSpecialistRequest { user_id: "".into() })),
        ("page.page_token",           search(&|s| s.page = page(1, "Not An Id"))),
        ("specialty",                 search(&|s| s.specialty = "Cardiology".into())),
        ("institution_id",            search(&|s| s.institution_id = "Not An Id".into())),
        ("language",                  search(&|s| s.language = 99)),
        ("name_contains",             search(&|s| s.name_contains = long.clone())),
    ];

    let app = TestApp::spawn().await;
    let mut platform = app.directory_as(PLATFORM_ADMIN);
    let before = directory_snapshot(&app).await;
    let mut wrong = Vec::new();
    for (field, request) in cases {
        let action = request.action();
        let since = audit_head(&app).await;
        let result = request.send(&mut platform).await;
        let prefix = format!("{field}: ");
        match result {
            Err(status)
                if status.code() == Code::InvalidArgument
                    && status.message().starts_with(&prefix) => {}
            other => wrong.push(format!(
                "{action} {field}: expected INVALID_ARGUMENT {prefix:?}…, got {other:?}"
            )),
        }
        let records = audit_since(&app, since).await;
        match records.as_slice() {
            [record]
                if record.entry.outcome == Outcome::Invalid
                    && record.entry.action == action
                    && record.entry.actor.user == PLATFORM_ADMIN => {}
            other => wrong.push(format!(
                "{action} {field}: expected one invalid record, got {other:#?}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} malformed requests were not refused as expected:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(directory_snapshot(&app).await, before);
    assert_chain_intact(&app).await;
}
