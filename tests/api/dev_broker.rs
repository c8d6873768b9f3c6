//! A development broker (`teleconsult serve`) in a temporary directory, and the
//! `teleconsult` client commands run against it as a given user.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use teleconsult::auth::pki::PkiDirectory;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const BINARY: &str = env!("CARGO_BIN_EXE_teleconsult");
/// Where the development broker makes its certificates, under its directory.
const PKI_DIR: &str = "teleconsult-data/pki";

/// A development broker in a temporary directory, stopped when dropped.
pub struct DevBroker {
    child: Child,
    server: String,
    /// Where the broker made its PKI and database, and where the commands run.
    pub directory: tempfile::TempDir,
}

/// A command's arguments, either as one line (`"consult list --json"`) or as a list of
/// words (`&["audit", "timeline", &id]`).
pub trait Arguments {
    fn words(&self) -> Vec<String>;
}

/// A command line split at spaces, except inside single quotes: `--reason 'a b'`.
impl Arguments for str {
    fn words(&self) -> Vec<String> {
        let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
        for c in self.chars().chain([' ']) {
            match c {
                '\'' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        words
    }
}

/// As for `str`: generic callers get no deref from `&String` to `&str`.
impl Arguments for String {
    fn words(&self) -> Vec<String> {
        self.as_str().words()
    }
}

/// Each element one word, as given.
impl<S: AsRef<str>> Arguments for [S] {
    fn words(&self) -> Vec<String> {
        self.iter().map(|word| word.as_ref().to_owned()).collect()
    }
}

impl<S: AsRef<str>, const N: usize> Arguments for [S; N] {
    fn words(&self) -> Vec<String> {
        self.as_slice().words()
    }
}

impl DevBroker {
    pub fn start() -> DevBroker {
        let directory = tempfile::tempdir().unwrap();
        let (child, server) = serve(directory.path());
        DevBroker {
            child,
            server,
            directory,
        }
    }

    /// Kills the broker outright (SIGKILL: no shutdown, nothing flushed), as a power
    /// cut would.
    pub fn crash(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the broker again on the same data (on a new port).
    pub fn restart(&mut self) {
        let (child, server) = serve(self.directory.path());
        self.child = child;
        self.server = server;
    }

    /// A mutually authenticated gRPC channel as `user`, with the certificate the
    /// development broker issued them.
    pub async fn channel_as(&self, user: &str) -> Channel {
        let pki = PkiDirectory::new(self.directory.path().join(PKI_DIR));
        let read = |path: PathBuf| std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(pki.ca_cert())))
            .identity(Identity::from_pem(
                read(pki.client_cert(user)),
                read(pki.client_key(user)),
            ))
            .domain_name("localhost");
        Channel::from_shared(self.server.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|error| panic!("connecting as {user}: {error:?}"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.directory
            .path()
            .join("teleconsult-data/teleconsult.db")
    }

    /// `teleconsult ARGUMENTS --as USER` from the directory the broker made its PKI in,
    /// with none of the caller's own settings.
    pub fn command<A: Arguments + ?Sized>(&self, user: &str, arguments: &A) -> Command {
        let mut command = Command::new(BINARY);
        command
            .current_dir(self.directory.path())
            .args(arguments.words())
            .args(["--as", user])
            .env("TELECONSULT_SERVER", &self.server)
            .env_remove("TELECONSULT_USER")
            .env_remove("TELECONSULT_PKI_DIR")
            .env_remove("TELECONSULT_DATABASE_URL")
            .env_remove("RUST_LOG");
        command
    }

    pub fn run<A: Arguments + ?Sized>(&self, user: &str, arguments: &A) -> Output {
        self.command(user, arguments).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout and stderr.
    pub fn ok<A: Arguments + ?Sized>(&self, user: &str, arguments: &A) -> (String, String) {
        let output = self.run(user, arguments);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(
            output.status.success(),
            "{:?} as {user}: {stdout}{stderr}",
            arguments.words()
        );
        (stdout, stderr)
    }

    /// Runs a command that must succeed with `--json` added; returns what it printed.
    pub fn json<A: Arguments + ?Sized>(&self, user: &str, arguments: &A) -> Value {
        let mut words = arguments.words();
        words.push("--json".to_owned());
        let (stdout, _) = self.ok(user, words.as_slice());
        serde_json::from_str(&stdout).expect("--json prints JSON")
    }

    /// Runs a command that must be refused with `code`; returns its error line.
    pub fn refused<A: Arguments + ?Sized>(&self, user: &str, arguments: &A, code: &str) -> String {
        let output = self.run(user, arguments);
        let stderr = text(&output.stderr);
        assert_ne!(
            output.status.code(),
            Some(0),
            "{:?} as {user}",
            arguments.words()
        );
        has(&stderr, &format!("error: {code}: "));
        stderr
    }
}

/// `teleconsult serve` in `directory` on a free port: the process and its address.
fn serve(directory: &Path) -> (Child, String) {
    let mut child = Command::new(BINARY)
        .current_dir(directory)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting teleconsult serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let port = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("serve exited before listening: {:?}", child.wait());
        }
        if let Some(address) = line.trim().strip_prefix("listening on ") {
            break address.rsplit(':').next().unwrap().to_owned();
        }
    };
    (child, format!("https://localhost:{port}"))
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `text` contains `needle`, showing `text` when it does not.
#[track_caller]
pub fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}
