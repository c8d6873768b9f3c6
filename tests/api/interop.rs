//! A client nobody here wrote: Python grpcio (C-core, BoringSSL) drives the broker
//! through reflection alone, as grpcurl would.

use std::process::Command;

use crate::helpers::TestApp;

/// Python with grpcio, or `None` outside CI when it is missing (CI installs it, and
/// there a missing module is a failure).
fn python_with_grpcio() -> Option<&'static str> {
    let usable = Command::new("python3")
        .args(["-c", "import grpc, grpc_health, grpc_reflection"])
        .status()
        .is_ok_and(|status| status.success());
    if usable {
        return Some("python3");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide python3 with grpcio, grpcio-health-checking and grpcio-reflection"
    );
    eprintln!("python3 with grpcio not found; skipping the grpcio interop test");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_speaks_to_the_broker_through_reflection() {
    let Some(python) = python_with_grpcio() else {
        return;
    };
    let app = TestApp::spawn().await;
    let certificate = app.certificate_for("biru-nurse-dawa");
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, contents: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = write("ca.pem", app.ca.cert_pem());
    let cert = write("client.pem", &certificate.cert_pem);
    let key = write("client.key.pem", &certificate.key_pem);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/grpcio_probe.py");
    let address = format!("127.0.0.1:{}", app.address.port());

    let output = tokio::process::Command::new(python)
        .args([script, &address, &ca, &cert, &key])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(seen["health"], "SERVING");
    let services = seen["services"].as_array().unwrap();
    for service in ["teleconsult.v1.DirectoryService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == service), "{seen}");
    }
    assert_eq!(seen["who_am_i"], "biru-nurse-dawa");
    assert_eq!(
        seen["cardiologists"],
        serde_json::json!(["zjpph-altitude-li", "zju2-cardio-chen"])
    );
    assert_eq!(seen["invalid"], "INVALID_ARGUMENT");
    assert!(
        seen["invalid_message"].as_str().unwrap().starts_with("id:"),
        "{seen}"
    );
    assert_eq!(seen["scheduling"], "OK");
    assert_eq!(seen["without_certificate"], "UNAVAILABLE");
}
