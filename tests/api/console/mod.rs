//! The web console's port over real TLS with real clients: tonic (gRPC over HTTP/2,
//! server-authenticated TLS, the session cookie as metadata), hand-written gRPC-Web
//! over HTTP/1.1 and over HTTP/2, and plain GETs of the console's files. Sign-in,
//! lockout, sign-out, enrollment and the cookie's checks; the same policy and audit
//! as on the mTLS port; and the browser's `Open`/`Signal` signaling.

use teleconsult::audit::{Actor, AuditEntry, Outcome, now_micros, unix_micros};
use teleconsult::auth::web_session::COOKIE_NAME;
use teleconsult::domain::ids::UserId;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::account_service_client::AccountServiceClient;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::helpers::TestApp;

mod browser_media;
mod cookies;
mod enrollment;
mod files;
mod grpc_web;
mod policy;
mod sign_in;
mod signaling;
mod web;

const NURSE: &str = "biru-nurse-dawa";
const INTERPRETER: &str = "biru-interpreter-norbu";
const DOCTOR: &str = "zju2-cardio-chen";
const BIRU_ADMIN: &str = "biru-admin";
const BIRU: &str = "biru-county-hospital";

const PASSWORD: &str = "yak butter tea at dawn";
const NEW_PASSWORD: &str = "namtso lake in winter";

/// Sets `user`'s password through the store, as the dev broker's seeding does.
async fn set_password(app: &TestApp, user: &str, password: &str) {
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || teleconsult::auth::password::hash(&owned))
        .await
        .unwrap()
        .unwrap();
    let audit = AuditEntry::new(
        Actor::local_operator(),
        "account.set_password",
        format!("user:{user}"),
        Outcome::Ok,
    );
    app.store
        .set_password(
            &UserId::parse(user).unwrap(),
            &hash,
            unix_micros(now_micros()),
            audit,
        )
        .await
        .unwrap();
}

fn console_accounts(app: &TestApp) -> AccountServiceClient<Channel> {
    AccountServiceClient::new(app.console_channel())
}

/// `message` with the session cookie `value`, as a browser on the console sends it.
fn with_cookie<T>(message: T, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("cookie", format!("{COOKIE_NAME}={value}").parse().unwrap());
    request
}

/// A successful sign-in: the answer, the whole `Set-Cookie`, and the cookie's value.
#[derive(Debug)]
struct SignedIn {
    response: pb::SignInResponse,
    set_cookie: String,
    cookie: String,
}

/// The value that a `Set-Cookie` header gives our cookie.
fn cookie_value(set_cookie: &str) -> String {
    let (pair, _) = set_cookie.split_once(';').unwrap_or((set_cookie, ""));
    let (name, value) = pair.split_once('=').expect("name=value");
    assert_eq!(
        name.trim(),
        COOKIE_NAME,
        "the cookie's name in {set_cookie:?}"
    );
    value.trim().to_owned()
}

/// The attributes of a `Set-Cookie` header after the name and value, trimmed.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| attribute.trim().to_owned())
        .collect()
}

/// Signs in over the console port with tonic (gRPC over HTTP/2).
async fn sign_in(app: &TestApp, user: &str, password: &str) -> Result<SignedIn, Status> {
    let response = console_accounts(app)
        .sign_in(pb::SignInRequest {
            user_id: user.to_owned(),
            password: password.to_owned(),
        })
        .await?;
    let set_cookie = response
        .metadata()
        .get("set-cookie")
        .expect("a successful sign-in sets the session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    Ok(SignedIn {
        response: response.into_inner(),
        cookie: cookie_value(&set_cookie),
        set_cookie,
    })
}

/// Sets `user`'s password and signs them in; their cookie's value.
async fn signed_in(app: &TestApp, user: &str) -> String {
    set_password(app, user, PASSWORD).await;
    sign_in(app, user, PASSWORD)
        .await
        .unwrap_or_else(|status| panic!("{user} could not sign in: {status:?}"))
        .cookie
}

/// WhoAmI over the console port with session cookie `cookie`.
async fn who_am_i(app: &TestApp, cookie: &str) -> Result<pb::WhoAmIResponse, Status> {
    DirectoryServiceClient::new(app.console_channel())
        .who_am_i(with_cookie(pb::WhoAmIRequest {}, cookie))
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts that `result` failed with `code` and a message mentioning `mentions`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, mentions: &str) -> Status {
    let status = match result {
        Ok(value) => panic!("expected {code:?} mentioning {mentions:?}, got {value:?}"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        code,
        "expected {code:?} mentioning {mentions:?}, got {status:?}"
    );
    assert!(
        status.message().contains(mentions),
        "the {code:?} message {:?} does not mention {mentions:?}",
        status.message()
    );
    status
}

/// The audit records of `action` appended after `since`, oldest first.
async fn audited_since(app: &TestApp, since: u64, action: &str) -> Vec<AuditEntry> {
    crate::directory::audit_since(app, since)
        .await
        .into_iter()
        .map(|record| record.entry)
        .filter(|entry| entry.action == action)
        .collect()
}

fn outcomes(entries: &[AuditEntry]) -> Vec<Outcome> {
    entries.iter().map(|entry| entry.outcome).collect()
}
