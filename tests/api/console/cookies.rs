//! What the gate does with the session cookie: a signed-out, altered, foreign-key,
//! unknown or expired session, or a deactivated user's, is refused and audited.

use teleconsult::auth::web_session::{SessionKey, new_session_id};
use teleconsult::store::WebSession;

use super::*;
use crate::directory::audit_head;
use crate::helpers::CONSOLE_SESSION_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_clears_the_cookie() {
    let app = TestApp::spawn_with_console().await;
    let cookie = signed_in(&app, NURSE).await;
    who_am_i(&app, &cookie).await.unwrap();
    let before = audit_head(&app).await;

    let response = console_accounts(&app)
        .sign_out(with_cookie(pb::SignOutRequest {}, &cookie))
        .await
        .unwrap();
    let cleared = response
        .metadata()
        .get("set-cookie")
        .expect("signing out clears the cookie")
        .to_str()
        .unwrap();
    assert_eq!(cookie_value(cleared), "");
    let attributes = cookie_attributes(cleared);
    for wanted in [
        "Max-Age=0",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{cleared:?} lacks {wanted}"
        );
    }
    let signed_out = audited_since(&app, before, "account.sign_out").await;
    assert_eq!(outcomes(&signed_out), [Outcome::Ok]);
    assert_eq!(signed_out[0].actor.user, NURSE);

    // A browser that kept the cookie (or a thief who copied it) gets nowhere.
    refused(
        who_am_i(&app, &cookie).await,
        Code::Unauthenticated,
        "signed out",
    );
    refused(
        console_accounts(&app)
            .sign_out(with_cookie(pb::SignOutRequest {}, &cookie))
            .await,
        Code::Unauthenticated,
        "signed out",
    );
    let refusals = audited_since(&app, before, "directory.who_am_i").await;
    assert_eq!(outcomes(&refusals), [Outcome::Denied]);
    assert_eq!(
        refusals[0].actor.user, NURSE,
        "the refusal names whose session it was"
    );
    // Signing in again makes a new session.
    let again = sign_in(&app, NURSE, PASSWORD).await.unwrap();
    assert_ne!(again.cookie, cookie);
    who_am_i(&app, &again.cookie).await.unwrap();
}

/// `value` with the last character of its signature changed.
fn tampered(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_forged_unknown_and_expired_cookies_are_refused() {
    let app = TestApp::spawn_with_console().await;
    let cookie = signed_in(&app, NURSE).await;
    let (id, signature) = cookie.split_once('.').expect("id.signature");
    assert_eq!(id.len(), 32);
    assert_eq!(signature.len(), 64);
    let before = audit_head(&app).await;

    refused(
        who_am_i(&app, &tampered(&cookie)).await,
        Code::Unauthenticated,
        "not valid",
    );
    let other_key = SessionKey::from_bytes(&[0x11; 32]);
    refused(
        who_am_i(&app, &other_key.sign(id)).await,
        Code::Unauthenticated,
        "not valid",
    );
    refused(who_am_i(&app, id).await, Code::Unauthenticated, "not valid");
    let key = SessionKey::from_bytes(&CONSOLE_SESSION_KEY);
    refused(
        who_am_i(&app, &key.sign(&new_session_id())).await,
        Code::Unauthenticated,
        "unknown session",
    );

    // A session whose eight hours are over, signed with the right key.
    let now = unix_micros(now_micros());
    let hour = 3_600_000_000;
    let expired = WebSession {
        id: new_session_id(),
        user: UserId::parse(NURSE).unwrap(),
        created_at: now - 9 * hour,
        expires_at: now - hour,
        ended_at: None,
    };
    let audit = AuditEntry::new(
        Actor::local_operator(),
        "account.sign_in",
        format!("user:{NURSE}"),
        Outcome::Ok,
    );
    app.store.start_web_session(&expired, audit).await.unwrap();
    refused(
        who_am_i(&app, &key.sign(&expired.id)).await,
        Code::Unauthenticated,
        "expired",
    );

    let refusals = audited_since(&app, before, "directory.who_am_i").await;
    assert_eq!(outcomes(&refusals), [Outcome::Denied; 5], "{refusals:#?}");
    assert!(
        refusals.iter().all(|e| e.details.contains("console")),
        "refusals say which port: {refusals:#?}"
    );
    // Only the expired session can be attributed to someone.
    assert_eq!(refusals[4].actor.user, NURSE);
    assert!(refusals[..4].iter().all(|e| e.actor.user.is_empty()));

    // None of that touched the real session.
    who_am_i(&app, &cookie).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_users_session_is_refused() {
    let app = TestApp::spawn_with_console().await;
    let cookie = signed_in(&app, NURSE).await;
    who_am_i(&app, &cookie).await.unwrap();

    app.directory_as(BIRU_ADMIN)
        .update_user(pb::UpdateUserRequest {
            id: NURSE.into(),
            active: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let before = audit_head(&app).await;
    refused(
        who_am_i(&app, &cookie).await,
        Code::Unauthenticated,
        "deactivated",
    );
    let refusals = audited_since(&app, before, "directory.who_am_i").await;
    assert_eq!(outcomes(&refusals), [Outcome::Denied]);
    assert_eq!(refusals[0].actor.user, NURSE);
    // Nor can they sign in again, and the answer does not say why.
    refused(
        sign_in(&app, NURSE, PASSWORD).await,
        Code::Unauthenticated,
        "wrong user id or password",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_signs_every_browser_out() {
    let app = TestApp::spawn_with_console().await;
    let first = signed_in(&app, NURSE).await;
    // A second browser signs in with the same password (`signed_in` would set it again).
    let second = sign_in(&app, NURSE, PASSWORD).await.unwrap().cookie;
    let doctor = signed_in(&app, DOCTOR).await;
    who_am_i(&app, &first).await.unwrap();
    who_am_i(&app, &second).await.unwrap();

    // A stolen password is changed by the nurse's admin: whoever used it is out.
    AccountServiceClient::new(app.channel_as(BIRU_ADMIN))
        .set_password(pb::SetPasswordRequest {
            user_id: NURSE.into(),
            password: NEW_PASSWORD.into(),
        })
        .await
        .unwrap();
    for cookie in [&first, &second] {
        refused(
            who_am_i(&app, cookie).await,
            Code::Unauthenticated,
            "signed out",
        );
    }
    // Other users' sessions are untouched, and the new password signs in.
    who_am_i(&app, &doctor).await.unwrap();
    sign_in(&app, NURSE, NEW_PASSWORD).await.unwrap();
}
