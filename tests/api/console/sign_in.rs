//! Password sign-in: the cookie it sets, the principal it yields, the one answer
//! every wrong credential gets, and the lockout after repeated failures.

use teleconsult::proto::v1::audit_service_client::AuditServiceClient;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;

use super::*;
use crate::directory::audit_head;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_a_strict_cookie_that_acts_as_the_users_certificate_would() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, NURSE, PASSWORD).await;
    let before = audit_head(&app).await;

    let signed = sign_in(&app, NURSE, PASSWORD).await.unwrap();
    assert_eq!(
        signed.response.principal,
        Some(pb::Principal {
            user_id: NURSE.into(),
            institution_id: BIRU.into(),
            role: pb::Role::ClinicStaff as i32,
            certificate_fingerprint: String::new(),
        })
    );
    let expires = signed
        .response
        .expires_at
        .expect("the session's end is given");
    let in_8_hours = now_micros().unix_timestamp() + 8 * 3600;
    assert!(
        (expires.seconds - in_8_hours).abs() < 60,
        "the session should last 8 h, ends at {expires:?}"
    );

    let attributes = cookie_attributes(&signed.set_cookie);
    for wanted in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "Set-Cookie {:?} lacks {wanted}",
            signed.set_cookie
        );
    }
    // `__Host-` cookies must not name a domain.
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "{}",
        signed.set_cookie
    );

    // The cookie makes the console's calls act as the nurse's certificate does.
    let by_cookie = who_am_i(&app, &signed.cookie).await.unwrap();
    let by_certificate = DirectoryServiceClient::new(app.channel_as(NURSE))
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut certified = by_certificate.principal.clone().unwrap();
    assert_eq!(certified.certificate_fingerprint.len(), 64);
    certified.certificate_fingerprint.clear();
    assert_eq!(by_cookie.principal, Some(certified));
    assert_eq!(by_cookie.user, by_certificate.user);
    assert_eq!(by_cookie.institution, by_certificate.institution);
    assert!(by_cookie.user.is_some() && by_cookie.institution.is_some());

    // Audited, with where it came from, without the session id that the cookie carries.
    let signed_in = audited_since(&app, before, "account.sign_in").await;
    assert_eq!(outcomes(&signed_in), [Outcome::Ok]);
    assert_eq!(from_address(&signed_in[0]), Some("127.0.0.1".into()));
    assert_eq!(signed_in[0].actor.user, NURSE);
    assert_eq!(signed_in[0].target, format!("user:{NURSE}"));
    let session_id = signed.cookie.split('.').next().unwrap();
    assert!(
        !signed_in[0].details.contains(session_id),
        "the audit log must not hold a usable session id: {}",
        signed_in[0].details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_credential_gets_one_answer_and_every_failure_is_audited() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, NURSE, PASSWORD).await;
    let before = audit_head(&app).await;

    let wrong_password = refused(
        sign_in(&app, NURSE, "not the password").await,
        Code::Unauthenticated,
        "wrong user id or password",
    );
    // An unknown user, and a user who has no password, hear exactly the same.
    for user in ["nobody-of-this-name", DOCTOR] {
        let status = refused(
            sign_in(&app, user, "not the password").await,
            Code::Unauthenticated,
            "wrong user id or password",
        );
        assert_eq!(status.message(), wrong_password.message(), "for {user}");
    }
    refused(
        sign_in(&app, "Not A User Id!", PASSWORD).await,
        Code::InvalidArgument,
        "user_id",
    );
    refused(
        sign_in(&app, NURSE, "").await,
        Code::InvalidArgument,
        "password",
    );

    let failures = audited_since(&app, before, "account.sign_in").await;
    assert_eq!(
        outcomes(&failures),
        [
            Outcome::Denied,
            Outcome::Denied,
            Outcome::Denied,
            Outcome::Invalid,
            Outcome::Invalid
        ],
        "{failures:#?}"
    );
    let who: Vec<_> = failures.iter().map(|e| e.actor.user.as_str()).collect();
    assert_eq!(
        who,
        [
            NURSE,
            "nobody-of-this-name",
            DOCTOR,
            "Not A User Id!",
            NURSE
        ]
    );
    assert!(
        failures
            .iter()
            .all(|e| !e.details.contains("not the password")),
        "an offered password reached the audit log: {failures:#?}"
    );
    // Each says where the attempt came from.
    assert!(
        failures
            .iter()
            .all(|e| from_address(e) == Some("127.0.0.1".into())),
        "{failures:#?}"
    );
    // Nothing was signed in, and the nurse's failure counts towards a lockout.
    let credential = app
        .store
        .credential(&UserId::parse(NURSE).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.failed_attempts, 1);
    sign_in(&app, NURSE, PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account_until_an_admin_sets_a_new_one() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, NURSE, PASSWORD).await;
    let before = audit_head(&app).await;

    for attempt in 1..=4 {
        let status = refused(
            sign_in(&app, NURSE, "guessing").await,
            Code::Unauthenticated,
            "wrong user id or password",
        );
        assert!(
            !status.message().contains("locked"),
            "attempt {attempt}: {status:?}"
        );
    }
    refused(
        sign_in(&app, NURSE, "guessing").await,
        Code::PermissionDenied,
        "locked",
    );
    // Now even the right password is refused.
    refused(
        sign_in(&app, NURSE, PASSWORD).await,
        Code::PermissionDenied,
        "locked",
    );
    let attempts = audited_since(&app, before, "account.sign_in").await;
    assert_eq!(outcomes(&attempts), [Outcome::Denied; 6], "{attempts:#?}");
    assert!(
        attempts[5].details.contains("locked"),
        "the refusal while locked says why: {}",
        attempts[5].details
    );

    // The nurse's admin sets a new password over mTLS: that lifts the lock.
    AccountServiceClient::new(app.channel_as(BIRU_ADMIN))
        .set_password(pb::SetPasswordRequest {
            user_id: NURSE.into(),
            password: NEW_PASSWORD.into(),
        })
        .await
        .unwrap();
    let set = audited_since(&app, before, "account.set_password").await;
    assert_eq!(outcomes(&set), [Outcome::Ok]);
    assert_eq!(set[0].actor.user, BIRU_ADMIN);
    assert_eq!(set[0].target, format!("user:{NURSE}"));

    refused(
        sign_in(&app, NURSE, PASSWORD).await,
        Code::Unauthenticated,
        "wrong user id or password",
    );
    let signed = sign_in(&app, NURSE, NEW_PASSWORD).await.unwrap();
    who_am_i(&app, &signed.cookie).await.unwrap();
    let credential = app
        .store
        .credential(&UserId::parse(NURSE).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        credential.failed_attempts, 0,
        "a success clears the failures"
    );
    assert_eq!(credential.locked_until, None);
}

/// A call made through the console has no certificate to name; its audit record names
/// the session instead, so that an auditor can tie it to the sign-in (and the sign-out)
/// it came between — and the session is named by a digest, never the cookie's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_audited_console_call_names_the_session_it_came_through() {
    let app = TestApp::spawn_with_console().await;
    let before = audit_head(&app).await;
    let cookie = signed_in(&app, NURSE).await;
    let other = signed_in(&app, DOCTOR).await;
    // Calls that are audited: one refused (a nurse may not read the audit log), and
    // signing out.
    let query = AuditServiceClient::new(app.console_channel())
        .query(with_cookie(pb::QueryAuditRequest::default(), &cookie))
        .await;
    refused(query, Code::PermissionDenied, "");
    console_accounts(&app)
        .sign_out(with_cookie(pb::SignOutRequest {}, &cookie))
        .await
        .unwrap();

    let session = |entry: &AuditEntry| {
        let details: serde_json::Value = serde_json::from_str(&entry.details).unwrap();
        details["session"].as_str().map(str::to_owned)
    };
    let sign_ins = audited_since(&app, before, "account.sign_in").await;
    let users: Vec<_> = sign_ins.iter().map(|e| e.actor.user.as_str()).collect();
    assert_eq!(users, [NURSE, DOCTOR]);
    let nurses = session(&sign_ins[0]).expect("a sign-in names its session");
    let doctors = session(&sign_ins[1]).expect("a sign-in names its session");
    assert_ne!(nurses, doctors);
    let nurses = &nurses;
    let denied = audited_since(&app, before, "audit.query").await;
    assert_eq!(outcomes(&denied), [Outcome::Denied]);
    assert_eq!(session(&denied[0]).as_ref(), Some(nurses), "{denied:#?}");
    let signed_out = audited_since(&app, before, "account.sign_out").await;
    assert_eq!(
        session(&signed_out[0]).as_ref(),
        Some(nurses),
        "{signed_out:#?}"
    );
    for entry in denied.iter().chain(&signed_out) {
        for id in [&cookie, &other].map(|c| c.split('.').next().unwrap()) {
            assert!(!entry.details.contains(id), "{entry:?}");
        }
    }
    // A certificate's call names no session.
    let query = AuditServiceClient::new(app.channel_as(NURSE))
        .query(pb::QueryAuditRequest::default())
        .await;
    refused(query, Code::PermissionDenied, "");
    let denied = audited_since(&app, before, "audit.query").await;
    assert_eq!(session(&denied[1]), None, "{denied:#?}");
    assert_eq!(denied[1].actor.certificate_fingerprint.len(), 64);
}

/// The address an audited sign-in came from.
fn from_address(entry: &AuditEntry) -> Option<String> {
    let details: serde_json::Value = serde_json::from_str(&entry.details).unwrap();
    details["address"].as_str().map(str::to_owned)
}

/// Someone trying passwords across many accounts from one place (or locking every
/// doctor out from it) is held back once that address has failed 30 times within the
/// lockout window: even a right password from it is refused for a while, audited, while
/// other addresses are unaffected (each test broker has its own count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_failing_again_and_again_is_held_back() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, DOCTOR, PASSWORD).await;
    let before = audit_head(&app).await;
    for n in 0..30 {
        refused(
            sign_in(&app, &format!("guess-{n}"), "not the password").await,
            Code::Unauthenticated,
            "wrong user id or password",
        );
    }
    let held = refused(
        sign_in(&app, DOCTOR, PASSWORD).await,
        Code::ResourceExhausted,
        "too many failed sign-ins from this address",
    );
    assert!(held.message().contains("UTC+8"), "{held:?}");

    let attempts = audited_since(&app, before, "account.sign_in").await;
    assert_eq!(attempts.len(), 31);
    let last = attempts.last().unwrap();
    assert_eq!(
        (last.actor.user.as_str(), last.outcome),
        (DOCTOR, Outcome::Denied)
    );
    assert!(
        last.details.contains("too many failed sign-ins"),
        "{last:?}"
    );
    // The doctor's own account was not touched: no failure counted, no lock.
    let credential = app
        .store
        .credential(&UserId::parse(DOCTOR).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (0, None)
    );
}
