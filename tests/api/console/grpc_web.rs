//! gRPC-Web as the console's page speaks it, over HTTP/1.1 and over HTTP/2: the cookie
//! set by a sign-in in the response headers, calls made with it, and failures as
//! trailers-only responses or trailer frames.

use super::web::{Http, WebCall};
use super::*;

const SIGN_IN: &str = "/teleconsult.v1.AccountService/SignIn";
const WHO_AM_I: &str = "/teleconsult.v1.DirectoryService/WhoAmI";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http1_and_http2_signs_in_and_calls_with_the_cookie() {
    let app = TestApp::spawn_with_console().await;
    set_password(&app, NURSE, PASSWORD).await;
    let origin = super::web::same_origin(&app);

    for http in [Http::One, Http::Two] {
        let call = |path, cookie| WebCall {
            http,
            path,
            cookie,
            origin: Some(&origin),
        };
        let sign_in = pb::SignInRequest {
            user_id: NURSE.into(),
            password: PASSWORD.into(),
        };
        let (signed, head) = call(SIGN_IN, None)
            .unary::<pb::SignInResponse>(&app, &sign_in)
            .await
            .unwrap_or_else(|status| panic!("{http:?}: {status:?}"));
        assert_eq!(signed.principal.unwrap().user_id, NURSE);
        // A browser stores the cookie from the HTTP headers, not from gRPC trailers.
        let set_cookies = head.all("set-cookie");
        assert_eq!(set_cookies.len(), 1, "{http:?}: {head:?}");
        let attributes = cookie_attributes(set_cookies[0]);
        for wanted in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(attributes.iter().any(|a| a == wanted), "{http:?}: {head:?}");
        }
        let cookie = cookie_value(set_cookies[0]);

        // A successful call: one message, then a trailer frame with grpc-status 0.
        let mut stream = call(WHO_AM_I, Some(&cookie))
            .start(&app, &pb::WhoAmIRequest {})
            .await
            .unwrap_or_else(|(head, status)| panic!("{http:?}: {status:?} {head:?}"));
        let who: pb::WhoAmIResponse = stream.message().await.unwrap().expect("a message");
        assert_eq!(who.principal.unwrap().user_id, NURSE);
        assert!(
            stream
                .message::<pb::WhoAmIResponse>()
                .await
                .unwrap()
                .is_none()
        );
        let trailers = stream.trailers.as_ref().expect("a trailer frame");
        assert!(
            trailers.iter().any(|(n, v)| n == "grpc-status" && v == "0"),
            "{http:?}: {trailers:?}"
        );

        // Failures: a wrong password; no cookie; a cookie of another key.
        let wrong = pb::SignInRequest {
            user_id: NURSE.into(),
            password: "not the password".into(),
        };
        let Err((head, status)) = call(SIGN_IN, None).start(&app, &wrong).await else {
            panic!("{http:?}: a wrong password was accepted");
        };
        assert_eq!(head.status, 200, "gRPC-Web failures are HTTP 200");
        assert_eq!(head.header("grpc-status"), Some("16"), "{http:?}: {head:?}");
        assert!(head.header("set-cookie").is_none());
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "wrong user id or password");

        let status = call(WHO_AM_I, None)
            .unary::<pb::WhoAmIResponse>(&app, &pb::WhoAmIRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{http:?}: {status:?}");
        assert!(status.message().contains("not signed in"), "{status:?}");

        let forged = teleconsult::auth::web_session::SessionKey::from_bytes(&[1; 32])
            .sign(cookie.split('.').next().unwrap());
        let status = call(WHO_AM_I, Some(&forged))
            .unary::<pb::WhoAmIResponse>(&app, &pb::WhoAmIRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{http:?}: {status:?}");
        assert!(status.message().contains("not valid"), "{status:?}");

        // Signing out over gRPC-Web clears the cookie in the headers too.
        let (_, head) = call("/teleconsult.v1.AccountService/SignOut", Some(&cookie))
            .unary::<pb::SignOutResponse>(&app, &pb::SignOutRequest {})
            .await
            .unwrap();
        let cleared = head.header("set-cookie").expect("the cookie is cleared");
        assert!(cookie_attributes(cleared).iter().any(|a| a == "Max-Age=0"));
        let status = call(WHO_AM_I, Some(&cookie))
            .unary::<pb::WhoAmIResponse>(&app, &pb::WhoAmIRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().contains("signed out"), "{status:?}");
    }
}
