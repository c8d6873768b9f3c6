//! The console's files over plain HTTP/1.1 GETs: the page with its security headers,
//! the schema, 404 for anything else (including paths that try to leave the
//! console's directory), and 403 for requests from another origin.

use super::web::{self, Http, WebCall};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_schema_are_served_with_strict_headers() {
    let app = TestApp::spawn_with_console().await;

    let (head, body) = web::get(&app, "/").await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = head
        .header("content-security-policy")
        .expect("the page has a content security policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(head.header("x-frame-options"), Some("DENY"));
    assert!(String::from_utf8_lossy(&body).contains("<html"));

    let (head, body) = web::get(&app, "/schema.json").await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("application/json"));
    let schema: serde_json::Value = serde_json::from_slice(&body).expect("the schema is JSON");
    assert_eq!(
        schema["services"]["teleconsult.v1.AccountService"]["SignIn"]["input"],
        "teleconsult.v1.SignInRequest"
    );

    let (head, _) = web::get(&app, "/no-such-file.js").await;
    assert_eq!(head.status, 404, "{head:?}");
    assert!(head.header("content-security-policy").is_some());
    let (head, _) = web::get(&app, "/../Cargo.toml").await;
    assert_eq!(head.status, 404, "{head:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_cannot_leave_the_console_directory() {
    let root = tempfile::tempdir().unwrap();
    let console = root.path().join("console");
    std::fs::create_dir(&console).unwrap();
    std::fs::write(console.join("index.html"), "<html>test console</html>").unwrap();
    std::fs::write(console.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(root.path().join("secret.txt"), "the session key").unwrap();
    let app = TestApp::spawn_with_console_files(Some(console)).await;

    let (head, body) = web::get(&app, "/").await;
    assert_eq!(head.status, 200);
    assert_eq!(body, b"<html>test console</html>");
    let (head, _) = web::get(&app, "/app.js").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );

    for path in [
        "/../secret.txt",
        "/./../secret.txt",
        "/app.js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//../secret.txt",
    ] {
        let (head, body) = web::get(&app, path).await;
        assert_eq!(head.status, 404, "{path}: {head:?}");
        assert!(
            !String::from_utf8_lossy(&body).contains("session key"),
            "{path} escaped the console directory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_another_origin_are_refused_before_any_service() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, NURSE, PASSWORD).await;
    let before = crate::directory::audit_head(&app).await;
    let request = pb::SignInRequest {
        user_id: NURSE.into(),
        password: PASSWORD.into(),
    };
    for http in [Http::One, Http::Two] {
        let call = WebCall {
            http,
            path: "/teleconsult.v1.AccountService/SignIn",
            cookie: None,
            origin: Some("https://evil.example"),
        };
        let Err((head, _)) = call.start(&app, &request).await else {
            panic!("{http:?}: a cross-origin sign-in went through");
        };
        assert_eq!(head.status, 403, "{http:?}: {head:?}");
        assert!(head.header("set-cookie").is_none());
    }
    // The page's own origin is let through.
    let call = WebCall {
        http: Http::One,
        path: "/teleconsult.v1.AccountService/SignIn",
        cookie: None,
        origin: Some(&web::same_origin(&app)),
    };
    call.unary::<pb::SignInResponse>(&app, &request)
        .await
        .unwrap();
    // The refused requests reached no service: only the last sign-in is recorded.
    assert_eq!(
        outcomes(&audited_since(&app, before, "account.sign_in").await),
        [Outcome::Ok]
    );

    let (head, _) = web::http1(&app, "GET", "/", &[("origin", "https://evil.example")], &[]).await;
    assert_eq!(head.status, 403);
}

/// A hospital's own web certificate for the console (browsers trust its CA), while the
/// mTLS port keeps the deployment's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_presents_its_own_certificate_when_given_one() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Hospital web CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (cert, key) = (dir.path().join("web.pem"), dir.path().join("web.key.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_with_console_certificate((cert, key)).await;
    let port = app.console_address.unwrap().port();

    let with_ca = |pem: String| {
        tonic::transport::Channel::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect_lazy()
    };
    let request = || pb::SignInRequest {
        user_id: NURSE.into(),
        password: "not the password".into(),
    };
    // Trusting the hospital's web CA, a client reaches the console (and is told the
    // password is wrong: the call went through).
    let answer = AccountServiceClient::new(with_ca(ca.pem()))
        .sign_in(request())
        .await;
    refused(answer, Code::Unauthenticated, "wrong user id or password");
    // Trusting only the deployment's CA, it does not: the console no longer shows the
    // broker's certificate.
    let answer = AccountServiceClient::new(app.console_channel())
        .sign_in(request())
        .await;
    let status = answer.expect_err("the deployment's CA does not vouch for the console");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The mTLS port is unchanged.
    app.directory_as(NURSE)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap();
}
