//! Two ports, one policy: the mTLS port knows certificates only, the console port
//! session cookies only, and what a user may do is the same on both, audited alike.

use teleconsult::proto::v1::audit_service_client::AuditServiceClient;

use super::*;
use crate::directory::audit_head;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mtls_port_ignores_cookies_and_the_console_port_wants_one() {
    let app = TestApp::spawn_with_console().await;
    let nurse_cookie = signed_in(&app, NURSE).await;

    // The admin's certificate with the nurse's cookie: the certificate decides.
    let who = DirectoryServiceClient::new(app.channel_as(BIRU_ADMIN))
        .who_am_i(with_cookie(pb::WhoAmIRequest {}, &nurse_cookie))
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    assert_eq!(who.user_id, BIRU_ADMIN);
    assert_eq!(who.role, pb::Role::Admin as i32);
    assert!(!who.certificate_fingerprint.is_empty());

    // Passwords are for the console port only.
    let before = audit_head(&app).await;
    let mtls_accounts = || AccountServiceClient::new(app.channel_as(BIRU_ADMIN));
    refused(
        mtls_accounts()
            .sign_in(pb::SignInRequest {
                user_id: NURSE.into(),
                password: PASSWORD.into(),
            })
            .await,
        Code::FailedPrecondition,
        "web console's port",
    );
    refused(
        mtls_accounts()
            .enroll(pb::EnrollRequest {
                token: "a".repeat(64),
                password: NEW_PASSWORD.into(),
            })
            .await,
        Code::FailedPrecondition,
        "web console's port",
    );
    refused(
        mtls_accounts()
            .sign_out(with_cookie(pb::SignOutRequest {}, &nurse_cookie))
            .await,
        Code::FailedPrecondition,
        "web console session",
    );
    let sign_ins = audited_since(&app, before, "account.sign_in").await;
    assert_eq!(outcomes(&sign_ins), [Outcome::Invalid]);
    assert_eq!(
        outcomes(&audited_since(&app, before, "account.enroll").await),
        [Outcome::Invalid]
    );
    // The nurse's session survived the attempt to sign it out over mTLS.
    who_am_i(&app, &nurse_cookie).await.unwrap();

    // The console port without a cookie, or with only other cookies.
    let before = audit_head(&app).await;
    refused(
        DirectoryServiceClient::new(app.console_channel())
            .who_am_i(pb::WhoAmIRequest {})
            .await,
        Code::Unauthenticated,
        "not signed in",
    );
    let mut request = Request::new(pb::WhoAmIRequest {});
    request
        .metadata_mut()
        .insert("cookie", "theme=dark; lang=bo".parse().unwrap());
    refused(
        DirectoryServiceClient::new(app.console_channel())
            .who_am_i(request)
            .await,
        Code::Unauthenticated,
        "not signed in",
    );
    let refusals = audited_since(&app, before, "directory.who_am_i").await;
    assert_eq!(outcomes(&refusals), [Outcome::Denied; 2]);
    assert!(refusals.iter().all(|e| e.details.contains("console")));
}

/// The same call made on both ports, by `user` through their certificate and their
/// session cookie: both answers, mTLS first.
async fn on_both_ports<T, F, Fut>(
    app: &TestApp,
    user: &str,
    cookie: &str,
    call: F,
) -> [Result<T, Status>; 2]
where
    F: Fn(Channel, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mtls = call(app.channel_as(user), None).await;
    let console = call(app.console_channel(), Some(cookie.to_owned())).await;
    [mtls, console]
}

fn request<T>(message: T, cookie: Option<String>) -> Request<T> {
    match cookie {
        Some(cookie) => with_cookie(message, &cookie),
        None => Request::new(message),
    }
}

async fn set_password_as(
    channel: Channel,
    cookie: Option<String>,
    user: &str,
    password: &str,
) -> Result<(), Status> {
    AccountServiceClient::new(channel)
        .set_password(request(
            pb::SetPasswordRequest {
                user_id: user.into(),
                password: password.into(),
            },
            cookie,
        ))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_the_same_on_both_ports_and_refusals_are_audited() {
    let app = TestApp::spawn_with_console().await;
    let doctor = signed_in(&app, DOCTOR).await;
    let nurse = signed_in(&app, NURSE).await;
    let admin = signed_in(&app, BIRU_ADMIN).await;
    let before = audit_head(&app).await;

    // A doctor reads no audit log.
    for result in on_both_ports(&app, DOCTOR, &doctor, |channel, cookie| async move {
        AuditServiceClient::new(channel)
            .query(request(pb::QueryAuditRequest::default(), cookie))
            .await
            .map(|_| ())
    })
    .await
    {
        refused(result, Code::PermissionDenied, "for admins");
    }
    let queries = audited_since(&app, before, "audit.query").await;
    assert_eq!(outcomes(&queries), [Outcome::Denied; 2]);
    assert!(queries.iter().all(|e| e.actor.user == DOCTOR));
    assert_eq!(
        queries[1].actor.certificate_fingerprint, "",
        "the console's refusal is the cookie's"
    );
    assert_ne!(queries[0].actor.certificate_fingerprint, "");

    // Clinic staff set nobody's password.
    for result in on_both_ports(&app, NURSE, &nurse, |channel, cookie| async move {
        set_password_as(channel, cookie, INTERPRETER, NEW_PASSWORD).await
    })
    .await
    {
        refused(result, Code::PermissionDenied, "for admins");
    }
    // An institution's admin manages only their institution's users.
    for result in on_both_ports(&app, BIRU_ADMIN, &admin, |channel, cookie| async move {
        set_password_as(channel, cookie, DOCTOR, NEW_PASSWORD).await
    })
    .await
    {
        refused(result, Code::PermissionDenied, "zju2-hospital");
    }
    let refusals = audited_since(&app, before, "account.set_password").await;
    assert_eq!(outcomes(&refusals), [Outcome::Denied; 4], "{refusals:#?}");
    let pairs: Vec<_> = refusals
        .iter()
        .map(|e| (e.actor.user.as_str(), e.target.as_str()))
        .collect();
    let interpreter = format!("user:{INTERPRETER}");
    let doctor_target = format!("user:{DOCTOR}");
    assert_eq!(
        pairs,
        [
            (NURSE, interpreter.as_str()),
            (NURSE, interpreter.as_str()),
            (BIRU_ADMIN, doctor_target.as_str()),
            (BIRU_ADMIN, doctor_target.as_str()),
        ]
    );

    // A password too short is refused naming the field, and changes nothing.
    let before = audit_head(&app).await;
    for result in on_both_ports(&app, BIRU_ADMIN, &admin, |channel, cookie| async move {
        set_password_as(channel, cookie, NURSE, "short").await
    })
    .await
    {
        refused(result, Code::InvalidArgument, "password");
    }
    assert_eq!(
        outcomes(&audited_since(&app, before, "account.set_password").await),
        [Outcome::Invalid; 2]
    );
    sign_in(&app, NURSE, PASSWORD).await.unwrap();
    refused(
        sign_in(&app, NURSE, "short").await,
        Code::Unauthenticated,
        "wrong user id or password",
    );
    // And the admin can do it from the console, where the refusals were.
    set_password_as(app.console_channel(), Some(admin), NURSE, NEW_PASSWORD)
        .await
        .unwrap();
    sign_in(&app, NURSE, NEW_PASSWORD).await.unwrap();
}
