//! AuditService end to end, over mutual TLS against the real broker: queries and their
//! pagination while records keep arriving, who may read what, a consultation's
//! timeline, exports (JSON Lines and FHIR AuditEvent) and verification of a chain that
//! someone with database access has altered. And the `teleconsult audit` commands
//! against a development broker.
//!
//! Tests that involve the store run on SQLite and on PostgreSQL (modules `sqlite` and
//! `postgres`); the PostgreSQL variants need `TELECONSULT_TEST_DATABASE_URL` and
//! return at once without it.

use teleconsult::audit::{AuditRecord, Outcome};
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::audit_service_client::AuditServiceClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::helpers::TestApp;

/// For each named `async fn(TestApp)` of the enclosing module, a test on SQLite in
/// module `sqlite` and one on PostgreSQL in module `postgres`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(crate::helpers::TestApp::spawn().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let limits = teleconsult::server::HandshakeLimits::default();
                    let backend = crate::helpers::Backend::Postgres;
                    if let Some(app) = crate::helpers::TestApp::spawn_on(backend, limits).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

mod cli;
mod export;
mod fhir;
mod query;
mod scope;
mod timeline;
mod verify;

pub type Client = AuditServiceClient<Channel>;

pub fn audit_as(app: &TestApp, user: &str) -> Client {
    AuditServiceClient::new(app.channel_as(user))
}

/// Every record a query selects, page after page of `page_size`.
pub async fn walk(
    client: &mut Client,
    mut request: pb::QueryAuditRequest,
    page_size: u32,
) -> Result<Vec<pb::AuditRecord>, Status> {
    let mut records = Vec::new();
    let mut token = String::new();
    loop {
        request.page = Some(pb::PageRequest {
            page_size,
            page_token: token,
        });
        let page = client.query(request.clone()).await?.into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            return Ok(records);
        }
        token = page.next_page_token;
    }
}

pub fn seqs(records: &[pb::AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

pub fn stored_seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

pub fn outcome_of(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::Ok => pb::Outcome::Ok,
        Outcome::Denied => pb::Outcome::Denied,
        Outcome::Invalid => pb::Outcome::Invalid,
        Outcome::Error => pb::Outcome::Error,
    }
}

/// A record as the API returns it must be the stored record, field by field.
#[track_caller]
pub fn assert_same(answered: &pb::AuditRecord, stored: &AuditRecord) {
    let entry = &stored.entry;
    let at = answered.at.as_ref().expect("the time is set");
    let micros = i128::from(at.seconds) * 1_000_000 + i128::from(at.nanos) / 1_000;
    assert_eq!(
        (
            (answered.seq, micros),
            answered.actor_user_id.as_str(),
            answered.actor_institution_id.as_str(),
            answered.actor_role.as_str(),
            answered.actor_certificate_fingerprint.as_str(),
            answered.action.as_str(),
            answered.target.as_str(),
            answered.target_institution_id.as_str(),
            answered.outcome,
            answered.details.as_str(),
            answered.prev_hash.as_str(),
            answered.hash.as_str(),
        ),
        (
            (stored.seq, entry.at.unix_timestamp_nanos() / 1_000),
            entry.actor.user.as_str(),
            entry.actor.institution.as_str(),
            entry.actor.role.as_str(),
            entry.actor.certificate_fingerprint.as_str(),
            entry.action.as_str(),
            entry.target.as_str(),
            entry.target_institution.as_deref().unwrap_or(""),
            outcome_of(entry.outcome) as i32,
            entry.details.as_str(),
            stored.prev_hash.as_str(),
            stored.hash.as_str(),
        ),
    );
}

/// The consultation ids of each institution, as the store holds them, for working out
/// which records an institution's admin may see.
pub async fn parties(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    crate::scheduling::all_consultations(app)
        .await
        .into_iter()
        .map(|c| {
            (
                format!("consultation:{}", c.id),
                c.inviting_institution.to_string(),
                c.consulting_institution.map(|i| i.to_string()),
            )
        })
        .collect()
}

/// Whether an admin of `institution` sees `record`: its actor or its target belongs
/// to the institution, or it is about a consultation the institution invites or gives.
pub fn belongs_to(
    record: &AuditRecord,
    institution: &str,
    consultations: &[(String, String, Option<String>)],
) -> bool {
    let entry = &record.entry;
    entry.actor.institution == institution
        || entry.target_institution.as_deref() == Some(institution)
        || consultations.iter().any(|(target, inviting, consulting)| {
            *target == entry.target
                && (inviting == institution || consulting.as_deref() == Some(institution))
        })
}

/// Directory changes by an admin: each leaves one record. The new users are clinic
/// staff, or interpreters at the Zhejiang hospitals (which have no clinic staff).
pub async fn create_users(app: &TestApp, admin: &str, institution: &str, prefix: &str, n: usize) {
    let mut directory = app.directory_as(admin);
    let role = if institution.starts_with("zj") {
        pb::Role::Interpreter
    } else {
        pb::Role::ClinicStaff
    };
    for i in 0..n {
        directory
            .create_user(pb::CreateUserRequest {
                user: Some(pb::User {
                    id: format!("{prefix}-{i}"),
                    institution_id: institution.into(),
                    role: role as i32,
                    display_name_zh: "拉姆".into(),
                    display_name_en: format!("Lhamo {i}"),
                    active: true,
                }),
            })
            .await
            .expect("an admin adds a user");
    }
}

/// Runs SQL on the test database with the audit log's append-only triggers out of the
/// way, as someone with the database's owner rights could.
pub async fn tamper(app: &TestApp, statement: &str) {
    if let Some(path) = app.database_path() {
        let connection = rusqlite::Connection::open(path).unwrap();
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        connection
            .execute_batch(
                "DROP TRIGGER IF EXISTS audit_log_no_update;
                 DROP TRIGGER IF EXISTS audit_log_no_delete;",
            )
            .unwrap();
        connection.execute_batch(statement).unwrap();
    } else {
        let (client, connection) =
            tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
                .await
                .expect("connecting to the test database");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "ALTER TABLE audit_log DISABLE TRIGGER USER; {statement}"
            ))
            .await
            .unwrap();
        drop(client);
        let _ = connection.await;
    }
}

/// A little of everything, by several people of both sides: directory changes, a
/// refusal, an invalid request, and a consultation booked, accepted and consented to
/// that another clinic tried to read. Returns the consultation.
pub async fn history(app: &TestApp) -> pb::Consultation {
    use crate::scheduling::{
        BIRU_ADMIN, CHEN, DAWA, DROLMA, ZJU2_ADMIN, book, booking, local, monday_ahead, publish,
        record_consent, slot, usual_week,
    };
    create_users(app, BIRU_ADMIN, "biru-county-hospital", "biru-nurse-h", 2).await;
    create_users(app, ZJU2_ADMIN, "zju2-hospital", "zju2-nurse-h", 2).await;
    let refused = app
        .directory_as(DAWA)
        .list_users(pb::ListUsersRequest {
            institution_id: "zju2-hospital".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let again = app
        .directory_as(BIRU_ADMIN)
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User {
                id: "biru-nurse-h-0".into(),
                institution_id: "biru-county-hospital".into(),
                role: pb::Role::ClinicStaff as i32,
                display_name_zh: "拉姆".into(),
                display_name_en: "Someone else".into(),
                active: true,
            }),
        })
        .await;
    assert_eq!(again.unwrap_err().code(), tonic::Code::AlreadyExists);

    publish(app, CHEN, usual_week(), false).await;
    let booked = book(app, DAWA, booking(slot(CHEN, local(monday_ahead(0), 9, 0)))).await;
    app.scheduling_as(CHEN)
        .accept_consultation(pb::AcceptConsultationRequest {
            id: booked.id.clone(),
        })
        .await
        .expect("the assigned doctor accepts");
    let consented = record_consent(app, &booked.id).await;
    let nosy = app
        .scheduling_as(DROLMA)
        .get_consultation(pb::GetConsultationRequest {
            id: booked.id.clone(),
        })
        .await;
    assert_eq!(nosy.unwrap_err().code(), tonic::Code::PermissionDenied);
    consented
}
