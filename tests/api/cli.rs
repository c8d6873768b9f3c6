//! The `teleconsult` binary as an operator runs it: the zero-config development
//! broker, production config checks, the PKI commands and `audit verify`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use teleconsult::proto::v1::WhoAmIRequest;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const BINARY: &str = env!("CARGO_BIN_EXE_teleconsult");

fn teleconsult(directory: &Path, arguments: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(directory)
        .args(arguments)
        .env_remove("RUST_LOG")
        .output()
        .expect("running teleconsult")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `teleconsult serve` and returns it with everything it printed up to its
/// "listening on ADDR" line, and the address.
#[expect(
    clippy::zombie_processes,
    reason = "the child is returned to the caller, which terminates and waits for it"
)]
fn start_server(directory: &Path, arguments: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(BINARY)
        .current_dir(directory)
        .arg("serve")
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting teleconsult serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("serve exited ({status}) before listening; printed:\n{printed}");
        }
        printed.push_str(&line);
        if let Some(address) = line.trim().strip_prefix("listening on ") {
            return (child, printed, address.to_owned());
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Well inside the broker's own 10 s grace period: a clean drain, not a forced one.
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("serve did not stop within 5 s of SIGTERM");
}

async fn who_am_i(address: &str, pki: &Path, user: &str) -> String {
    teleconsult::server::init_crypto();
    let read = |name: &str| std::fs::read_to_string(pki.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(
            read(&format!("clients/{user}.pem")),
            read(&format!("clients/{user}.key.pem")),
        ))
        .domain_name("localhost");
    let port = address.rsplit(':').next().unwrap();
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    DirectoryServiceClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap()
        .user_id
}

// Multi-threaded so that the client's connection tasks keep running (and close their
// connections on GOAWAY) while this test blocks waiting for the child to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_arguments_makes_a_development_broker() {
    let directory = tempfile::tempdir().unwrap();
    let (mut child, printed, address) =
        start_server(directory.path(), &["--listen", "127.0.0.1:0"]);
    assert!(printed.contains("DEVELOPMENT"), "{printed}");
    assert!(printed.contains("grpcurl -cacert"), "{printed}");
    let data = directory.path().join("teleconsult-data");
    for file in [
        "pki/ca.pem",
        "pki/ca.key.pem",
        "pki/server.pem",
        "pki/crl.pem",
        "teleconsult.db",
        "README.txt",
    ] {
        assert!(data.join(file).exists(), "{file} missing");
    }
    // One client certificate per demo user, and they work.
    let pki = data.join("pki");
    for user in ["biru-nurse-dawa", "platform-admin"] {
        assert_eq!(who_am_i(&address, &pki, user).await, user);
    }
    let ca_before = std::fs::read(pki.join("ca.pem")).unwrap();
    assert!(terminate(&mut child).success(), "graceful exit on SIGTERM");

    // A second start reuses what the first one made.
    let (mut child, _, address) = start_server(directory.path(), &["--listen", "127.0.0.1:0"]);
    assert_eq!(std::fs::read(pki.join("ca.pem")).unwrap(), ca_before);
    assert_eq!(
        who_am_i(&address, &pki, "biru-nurse-dawa").await,
        "biru-nurse-dawa"
    );
    assert!(terminate(&mut child).success());
}

fn write_config(directory: &Path, extra: &str) -> std::path::PathBuf {
    let path = directory.join("teleconsult.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
{extra}
[tls]
client_ca = "pki/ca.pem"
server_cert = "pki/server.pem"
server_key = "pki/server.key.pem"
crl = "pki/crl.pem"

[database]
url = "sqlite://{db}"
"#,
            db = directory.join("broker.db").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn production_mode_generates_nothing_and_names_what_is_missing() {
    let directory = tempfile::tempdir().unwrap();
    let config = write_config(directory.path(), "");
    let output = teleconsult(
        directory.path(),
        &["serve", "--config", config.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("pki/ca.pem") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(!directory.path().join("pki").exists(), "nothing generated");
    assert!(!directory.path().join("teleconsult-data").exists());
}

#[test]
fn config_check_accepts_a_good_config_and_names_unknown_keys() {
    let directory = tempfile::tempdir().unwrap();
    let pki = directory.path().join("pki");
    let init = teleconsult(
        directory.path(),
        &[
            "pki",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "--san",
            "broker.example.org",
            "--san",
            "10.0.0.5",
        ],
    );
    assert!(init.status.success(), "{}", text(&init.stderr));
    let config = write_config(directory.path(), "");
    let check = teleconsult(
        directory.path(),
        &["config", "check", "--config", config.to_str().unwrap()],
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains(": ok"));

    let config = write_config(directory.path(), "handshake_timeout = 3\n");
    let check = teleconsult(
        directory.path(),
        &["config", "check", "--config", config.to_str().unwrap()],
    );
    assert!(!check.status.success());
    assert!(
        text(&check.stderr).contains("handshake_timeout"),
        "{}",
        text(&check.stderr)
    );

    let config = write_config(directory.path(), "");
    let check = Command::new(BINARY)
        .args(["config", "check", "--config", config.to_str().unwrap()])
        .env("TELECONSULT_SERVER__LISTEN_ADDRESS", "0.0.0.0:1")
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(
        text(&check.stderr).contains("listen_address"),
        "{}",
        text(&check.stderr)
    );
}

#[test]
fn pki_commands_issue_and_revoke() {
    let directory = tempfile::tempdir().unwrap();
    let pki = directory.path().join("pki");
    let dir = pki.to_str().unwrap();
    assert!(
        teleconsult(
            directory.path(),
            &["pki", "init", "--dir", dir, "--san", "localhost"]
        )
        .status
        .success()
    );
    let again = teleconsult(
        directory.path(),
        &["pki", "init", "--dir", dir, "--san", "localhost"],
    );
    assert!(!again.status.success(), "init refuses to replace a CA");

    let issue = teleconsult(
        directory.path(),
        &[
            "pki",
            "issue",
            "--dir",
            dir,
            "--user",
            "biru-nurse-dawa",
            "--institution",
            "biru-county-hospital",
            "--role",
            "clinic_staff",
        ],
    );
    assert!(issue.status.success(), "{}", text(&issue.stderr));
    let bad_role = teleconsult(
        directory.path(),
        &[
            "pki",
            "issue",
            "--dir",
            dir,
            "--user",
            "x",
            "--institution",
            "y",
            "--role",
            "nurse",
        ],
    );
    assert!(!bad_role.status.success());
    assert!(
        text(&bad_role.stderr).contains("--role"),
        "{}",
        text(&bad_role.stderr)
    );

    let cert = pki.join("clients/biru-nurse-dawa.pem");
    let revoke = teleconsult(
        directory.path(),
        &[
            "pki",
            "revoke",
            "--dir",
            dir,
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let crl = std::fs::read_to_string(pki.join("crl.pem")).unwrap();
    let (_, revoked) = teleconsult::auth::pki::read_crl(&crl).unwrap();
    let serial =
        teleconsult::auth::pki::serial_of(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert_eq!(
        revoked.iter().map(|r| &r.serial).collect::<Vec<_>>(),
        vec![&serial]
    );
}

#[test]
fn audit_verify_names_the_first_bad_record() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("broker.db");
    let url = format!("sqlite://{}", database.display());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/directory.example.toml");
    for _ in 0..3 {
        let import = teleconsult(
            directory.path(),
            &[
                "directory",
                "import",
                example.to_str().unwrap(),
                "--database-url",
                &url,
            ],
        );
        assert!(import.status.success(), "{}", text(&import.stderr));
    }
    let verify = teleconsult(
        directory.path(),
        &["audit", "verify", "--database-url", &url],
    );
    assert!(verify.status.success());
    assert!(
        text(&verify.stdout).contains("intact: 3 records"),
        "{}",
        text(&verify.stdout)
    );

    let connection = rusqlite::Connection::open(&database).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET outcome = 'denied' WHERE seq = 2;",
        )
        .unwrap();
    let verify = teleconsult(
        directory.path(),
        &["audit", "verify", "--database-url", &url],
    );
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        text(&verify.stdout).contains("BROKEN at record 2"),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn audit_verify_refuses_a_database_that_does_not_exist() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("mistyped.db");
    let url = format!("sqlite://{}", missing.display());
    let verify = teleconsult(
        directory.path(),
        &["audit", "verify", "--database-url", &url],
    );
    assert!(!verify.status.success());
    assert!(
        text(&verify.stderr).contains("not found"),
        "{}",
        text(&verify.stderr)
    );
    assert!(!missing.exists(), "verify must not create a database");
}

#[test]
fn logs_can_be_json() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("broker.db").display());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/directory.example.toml");
    let output = teleconsult(
        directory.path(),
        &[
            "--log-format",
            "json",
            "directory",
            "import",
            example.to_str().unwrap(),
            "--database-url",
            &url,
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let line = stderr.lines().next().expect("the migration is logged");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(parsed["level"], "INFO");
    assert!(parsed["message"].as_str().is_some());
}
