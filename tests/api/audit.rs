//! The audit chain as the API writes it: every change together with its record, every
//! refusal recorded, and tampering detected.

use teleconsult::audit::Outcome;
use teleconsult::proto::v1::{CreateUserRequest, Role, User};
use tonic::Code;

use crate::helpers::TestApp;

fn new_user(id: &str) -> CreateUserRequest {
    CreateUserRequest {
        user: Some(User {
            id: id.into(),
            institution_id: "biru-county-hospital".into(),
            role: Role::ClinicStaff as i32,
            display_name_zh: "拉姆".into(),
            display_name_en: "Lhamo".into(),
            active: true,
        }),
    }
}

#[tokio::test]
async fn a_change_and_its_record_are_written_together() {
    change_and_record(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_change_and_its_record_are_written_together_on_postgres() {
    let limits = teleconsult::server::HandshakeLimits::default();
    if let Some(app) = TestApp::spawn_on(crate::helpers::Backend::Postgres, limits).await {
        change_and_record(app).await;
    }
}

async fn change_and_record(app: TestApp) {
    let before = app.audit_records().await.len();
    let mut admin = app.directory_as("biru-admin");
    admin
        .create_user(new_user("biru-nurse-lhamo"))
        .await
        .unwrap();

    let records = app.audit_records().await;
    assert_eq!(records.len(), before + 1);
    let record = records.last().unwrap();
    assert_eq!(record.entry.action, "directory.create_user");
    assert_eq!(record.entry.target, "user:biru-nurse-lhamo");
    assert_eq!(
        record.entry.target_institution.as_deref(),
        Some("biru-county-hospital")
    );
    assert_eq!(record.entry.outcome, Outcome::Ok);
    assert_eq!(record.entry.actor.user, "biru-admin");
    assert_eq!(record.entry.actor.role, "admin");
    assert_eq!(record.entry.actor.certificate_fingerprint.len(), 64);
    assert!(app.store.verify_audit().await.unwrap().is_intact());
    app.stop().await;
}

#[tokio::test]
async fn a_refused_change_leaves_only_its_refusal() {
    let app = TestApp::spawn().await;
    let mut admin = app.directory_as("biru-admin");
    admin
        .create_user(new_user("biru-nurse-lhamo"))
        .await
        .unwrap();
    let before = app.audit_records().await.len();

    let mut changed = new_user("biru-nurse-lhamo");
    changed.user.as_mut().unwrap().display_name_en = "Someone Else".into();
    let status = admin.create_user(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let records = app.audit_records().await;
    assert_eq!(records.len(), before + 1, "only the refusal is recorded");
    let refusal = records.last().unwrap();
    assert_eq!(refusal.entry.outcome, Outcome::Invalid);
    assert!(refusal.entry.details.contains("already exists"));
    let stored = app
        .store
        .user(&teleconsult::domain::ids::UserId::parse("biru-nurse-lhamo").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.display_name_en.as_str(),
        "Lhamo",
        "the first write stands"
    );
    assert!(app.store.verify_audit().await.unwrap().is_intact());
}

#[tokio::test]
async fn allowed_reads_are_not_recorded_but_refused_ones_are() {
    let app = TestApp::spawn().await;
    let before = app.audit_records().await.len();
    let mut nurse = app.directory_as("biru-nurse-dawa");
    nurse
        .search_specialists(teleconsult::proto::v1::SearchSpecialistsRequest::default())
        .await
        .unwrap();
    assert_eq!(app.audit_records().await.len(), before);

    let status = nurse
        .list_users(teleconsult::proto::v1::ListUsersRequest {
            institution_id: "zju2-hospital".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let records = app.audit_records().await;
    assert_eq!(records.len(), before + 1);
    let refusal = records.last().unwrap();
    assert_eq!(refusal.entry.outcome, Outcome::Denied);
    assert_eq!(refusal.entry.action, "directory.list_users");
    assert_eq!(
        refusal.entry.target_institution.as_deref(),
        Some("zju2-hospital")
    );
}

/// Someone with write access to the database file edits a record: they must first
/// drop the append-only trigger, and the chain still gives them away.
#[tokio::test]
async fn tampering_with_the_stored_log_is_detected() {
    let app = TestApp::spawn().await;
    let mut admin = app.directory_as("platform-admin");
    for name in ["a", "b", "c"] {
        let mut request = new_user(&format!("biru-nurse-{name}"));
        request.user.as_mut().unwrap().display_name_en = format!("Nurse {name}");
        admin.create_user(request).await.unwrap();
    }
    let records = app.audit_records().await;
    let victim = records[records.len() - 2].seq;
    assert!(app.store.verify_audit().await.unwrap().is_intact());

    let database = app.database_path().expect("the app runs on sqlite");
    let connection = rusqlite::Connection::open(database).unwrap();
    let refused = connection.execute(
        "UPDATE audit_log SET details = '{}' WHERE seq = ?1",
        [victim as i64],
    );
    assert!(refused.is_err(), "the append-only trigger refuses updates");
    assert!(
        connection
            .execute("DELETE FROM audit_log WHERE seq = ?1", [victim as i64])
            .is_err()
    );

    connection
        .execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    connection
        .execute(
            "UPDATE audit_log SET actor_user = 'someone-else' WHERE seq = ?1",
            [victim as i64],
        )
        .unwrap();
    let report = app.store.verify_audit().await.unwrap();
    let (bad, problem) = report.first_bad.expect("tampering is detected");
    assert_eq!(bad, victim);
    assert!(problem.contains("altered"), "{problem}");
    assert_eq!(report.head.map(|(seq, _)| seq), Some(victim - 1));
}
