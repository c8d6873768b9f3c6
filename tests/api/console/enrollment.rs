//! Enrollment: an admin's one-time token with which a user chooses their password on
//! the console and is signed in.

use super::*;
use crate::directory::audit_head;

async fn enroll(app: &TestApp, token: &str, password: &str) -> Result<SignedIn, Status> {
    let response = console_accounts(app)
        .enroll(pb::EnrollRequest {
            token: token.into(),
            password: password.into(),
        })
        .await?;
    let set_cookie = response
        .metadata()
        .get("set-cookie")
        .expect("enrolling signs in")
        .to_str()
        .unwrap()
        .to_owned();
    Ok(SignedIn {
        response: response.into_inner(),
        cookie: cookie_value(&set_cookie),
        set_cookie,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_token_sets_a_password_once_and_signs_the_user_in() {
    let app = TestApp::spawn_with_console().await;
    let before = audit_head(&app).await;
    let created = AccountServiceClient::new(app.channel_as(BIRU_ADMIN))
        .create_enrollment(pb::CreateEnrollmentRequest {
            user_id: INTERPRETER.into(),
            valid_hours: 24,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.token.len() >= 32, "{created:?}");
    assert_eq!(
        created.enrollment_path,
        format!("/#/enroll/{}", created.token)
    );
    let created_audit = audited_since(&app, before, "account.create_enrollment").await;
    assert_eq!(outcomes(&created_audit), [Outcome::Ok]);
    assert!(
        !created_audit[0].details.contains(&created.token),
        "the audit log must not hold a usable token"
    );

    // A password too short: refused naming the field; the token is not spent.
    refused(
        enroll(&app, &created.token, "short").await,
        Code::InvalidArgument,
        "password",
    );
    refused(
        enroll(&app, &"0".repeat(64), NEW_PASSWORD).await,
        Code::NotFound,
        "token",
    );
    refused(
        enroll(&app, "", NEW_PASSWORD).await,
        Code::InvalidArgument,
        "token",
    );

    let enrolled = enroll(&app, &created.token, NEW_PASSWORD).await.unwrap();
    assert_eq!(
        enrolled.response.principal.as_ref().unwrap().user_id,
        INTERPRETER
    );
    let attributes = cookie_attributes(&enrolled.set_cookie);
    assert!(attributes.iter().any(|a| a == "HttpOnly"));
    let who = who_am_i(&app, &enrolled.cookie).await.unwrap();
    assert_eq!(who.principal.unwrap().user_id, INTERPRETER);
    // The chosen password is the interpreter's from now on.
    sign_in(&app, INTERPRETER, NEW_PASSWORD).await.unwrap();

    refused(
        enroll(&app, &created.token, "another fine password").await,
        Code::FailedPrecondition,
        "already been used",
    );
    refused(
        sign_in(&app, INTERPRETER, "another fine password").await,
        Code::Unauthenticated,
        "wrong user id or password",
    );

    let enrollments = audited_since(&app, before, "account.enroll").await;
    assert_eq!(
        outcomes(&enrollments),
        [
            Outcome::Invalid,
            Outcome::Invalid,
            Outcome::Invalid,
            Outcome::Ok,
            Outcome::Invalid
        ],
        "{enrollments:#?}"
    );
    assert_eq!(enrollments[3].actor.user, INTERPRETER);
    assert_eq!(enrollments[4].target, format!("user:{INTERPRETER}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_users_admin_creates_their_enrollment() {
    let app = TestApp::spawn_with_console().await;
    let nurse = signed_in(&app, NURSE).await;
    let admin = signed_in(&app, BIRU_ADMIN).await;
    let create = |user: &str, cookie: &str| {
        let request = with_cookie(
            pb::CreateEnrollmentRequest {
                user_id: user.into(),
                valid_hours: 0,
            },
            cookie,
        );
        let mut client = console_accounts(&app);
        async move { client.create_enrollment(request).await }
    };
    refused(
        create(INTERPRETER, &nurse).await,
        Code::PermissionDenied,
        "for admins",
    );
    refused(
        create(DOCTOR, &admin).await,
        Code::PermissionDenied,
        "zju2-hospital",
    );
    refused(
        create("no-such-user", &admin).await,
        Code::PermissionDenied,
        "platform admins",
    );
    let created = create(INTERPRETER, &admin).await.unwrap().into_inner();
    let expires = created.expires_at.unwrap().seconds;
    let in_72_hours = now_micros().unix_timestamp() + 72 * 3600;
    assert!((expires - in_72_hours).abs() < 60, "0 hours means 72");
    refused(
        console_accounts(&app)
            .create_enrollment(with_cookie(
                pb::CreateEnrollmentRequest {
                    user_id: INTERPRETER.into(),
                    valid_hours: 24 * 31,
                },
                &admin,
            ))
            .await,
        Code::InvalidArgument,
        "valid_hours",
    );
    // A deactivated user could never use a link: none is made.
    app.directory_as(BIRU_ADMIN)
        .update_user(pb::UpdateUserRequest {
            id: INTERPRETER.into(),
            active: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    refused(
        create(INTERPRETER, &admin).await,
        Code::FailedPrecondition,
        "deactivated",
    );
}
