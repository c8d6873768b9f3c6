//! Mutual TLS: every way a client certificate can be wrong, asserted with the status
//! a real gRPC client sees, and the audit record the refusal leaves.

use std::time::Duration;

use teleconsult::audit::Outcome;
use teleconsult::auth::pki::{CertificateAuthority, ClientSubject, Validity};
use teleconsult::proto::v1::WhoAmIRequest;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use teleconsult::server::HandshakeLimits;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{Backend, TestApp};

async fn who_am_i(channel: Channel) -> Result<String, tonic::Status> {
    DirectoryServiceClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .map(|response| response.into_inner().principal.unwrap().user_id)
}

fn subject(user: &str, institution: &str, role: &str) -> ClientSubject {
    ClientSubject {
        user: user.into(),
        institution: institution.into(),
        role: role.into(),
    }
}

/// The refusal a real client sees when the handshake rejects its certificate: under
/// TLS 1.3 the client finishes its side first, so it fails at its first call, with the
/// server's TLS alert as the cause. tonic reports such a transport failure as UNKNOWN
/// ("transport error"); other stacks say UNAVAILABLE.
fn assert_transport_refusal(status: &tonic::Status, alert: &str) {
    assert!(
        matches!(status.code(), Code::Unknown | Code::Unavailable),
        "{status:?}"
    );
    assert!(
        format!("{status:?}").contains(alert),
        "expected TLS alert {alert}: {status:?}"
    );
}

async fn handshake_refusals(app: &TestApp) -> Vec<teleconsult::audit::AuditRecord> {
    // The refusal is audited by a background task; give it a moment without sleeping
    // blindly: poll until it shows or a deadline passes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let records: Vec<_> = app
            .audit_records()
            .await
            .into_iter()
            .filter(|r| r.entry.action == "tls.handshake")
            .collect();
        if !records.is_empty() || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_valid_certificate_identifies_its_holder() {
    let app = TestApp::spawn().await;
    let user = who_am_i(app.channel_as("biru-nurse-dawa")).await.unwrap();
    assert_eq!(user, "biru-nurse-dawa");
}

#[tokio::test]
async fn no_certificate_is_refused_at_the_first_call() {
    let app = TestApp::spawn().await;
    let status = who_am_i(app.channel_without_certificate())
        .await
        .unwrap_err();
    assert_transport_refusal(&status, "CertificateRequired");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_and_audited() {
    let app = TestApp::spawn().await;
    let impostor = CertificateAuthority::generate("another CA")
        .unwrap()
        .issue_client(
            &subject("platform-admin", "platform", "admin"),
            Validity::days(1),
        )
        .unwrap();
    let status = who_am_i(app.channel_with(&impostor)).await.unwrap_err();
    assert_transport_refusal(&status, "UnknownCA");

    let refusals = handshake_refusals(&app).await;
    let refusal = refusals.last().expect("the refusal is audited");
    assert_eq!(refusal.entry.outcome, Outcome::Denied);
    assert_eq!(refusal.entry.actor.user, "platform-admin");
    assert!(
        refusal
            .entry
            .details
            .contains(r#""identity_verified":false"#)
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_and_audited() {
    let app = TestApp::spawn().await;
    let now = OffsetDateTime::now_utc();
    let expired = app
        .ca
        .issue_client(
            &subject("biru-nurse-dawa", "biru-county-hospital", "clinic_staff"),
            Validity {
                not_before: now - time::Duration::days(30),
                not_after: now - time::Duration::days(1),
            },
        )
        .unwrap();
    let status = who_am_i(app.channel_with(&expired)).await.unwrap_err();
    assert_transport_refusal(&status, "CertificateExpired");
    let refusals = handshake_refusals(&app).await;
    let refusal = refusals.last().expect("the refusal is audited");
    assert_eq!(refusal.entry.actor.user, "biru-nurse-dawa");
    assert!(
        refusal.entry.details.to_lowercase().contains("expired"),
        "{}",
        refusal.entry.details
    );
}

#[tokio::test]
async fn revocation_takes_effect_without_a_restart() {
    let app = TestApp::spawn().await;
    let certificate = app.certificate_for("biru-nurse-dawa");
    let open = app.channel_with(&certificate);
    who_am_i(open.clone()).await.unwrap();

    app.pki.revoke(&certificate.cert_pem).unwrap();

    // A connection opened before the revocation is refused at its next call...
    let status = who_am_i(open).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    // ...and a new connection fails its handshake.
    let status = who_am_i(app.channel_with(&certificate)).await.unwrap_err();
    assert_transport_refusal(&status, "CertificateRevoked");
    // Other users are unaffected.
    who_am_i(app.channel_as("nagqu-nurse-drolma"))
        .await
        .unwrap();

    let refusals = handshake_refusals(&app).await;
    assert!(
        refusals
            .iter()
            .any(|r| r.entry.details.to_lowercase().contains("revoked"))
    );
}

/// Certificates signed by the deployment's CA whose claims the directory does not
/// back: each is refused with UNAUTHENTICATED, and audited under the claimed name.
#[tokio::test]
async fn claims_the_directory_does_not_know_are_refused_and_audited() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            subject("biru-nurse-dawa", "biru-county-hospital", "nurse"),
            "role",
        ),
        (
            subject("biru-nurse-dawa", "lhasa-hospital", "clinic_staff"),
            "institution",
        ),
        (
            subject("nobody", "biru-county-hospital", "clinic_staff"),
            "not in the directory",
        ),
        (
            subject("biru-nurse-dawa", "biru-county-hospital", "admin"),
            "role",
        ),
        (
            subject("biru-nurse-dawa", "nagqu-peoples", "clinic_staff"),
            "institution",
        ),
        (
            subject("Bad Name", "biru-county-hospital", "clinic_staff"),
            "user (CN)",
        ),
    ];
    for (claimed, expected) in cases {
        let certificate = app.certificate(&claimed);
        let status = who_am_i(app.channel_with(&certificate)).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{claimed:?}: {status:?}"
        );
        assert!(
            status.message().contains(expected),
            "{claimed:?}: {status:?}"
        );
        let fingerprint = certificate.fingerprint().unwrap();
        let audited = app
            .audit_records()
            .await
            .into_iter()
            .find(|r| r.entry.actor.certificate_fingerprint == fingerprint)
            .unwrap_or_else(|| panic!("{claimed:?} refusal not audited"));
        assert_eq!(audited.entry.outcome, Outcome::Denied);
        assert_eq!(audited.entry.actor.user, claimed.user);
        assert_eq!(audited.entry.action, "directory.who_am_i");
    }
}

#[tokio::test]
async fn a_deactivated_user_is_refused() {
    let app = TestApp::spawn().await;
    let channel = app.channel_as("nagqu-nurse-drolma");
    who_am_i(channel.clone()).await.unwrap();
    let mut admin = app.directory_as("platform-admin");
    admin
        .update_user(teleconsult::proto::v1::UpdateUserRequest {
            id: "nagqu-nurse-drolma".into(),
            active: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = who_am_i(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("deactivated"), "{status:?}");
}

/// Clients that open a connection and say nothing hold a handshake slot only until the
/// handshake timeout; a real client gets through.
#[tokio::test]
async fn silent_clients_cannot_stall_the_accept_loop() {
    let limits = HandshakeLimits {
        timeout: Duration::from_millis(300),
        max_concurrent: 2,
    };
    let app = TestApp::spawn_on(Backend::Sqlite, limits).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(tokio::net::TcpStream::connect(app.address).await.unwrap());
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        who_am_i(app.channel_as("biru-nurse-dawa")),
    )
    .await
    .expect("a real client is served despite silent ones");
    assert_eq!(answered.unwrap(), "biru-nurse-dawa");

    // The server hangs up on the silent ones.
    for mut socket in silent {
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("the server closes a silent connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
