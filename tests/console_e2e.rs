//! The web console in a real browser: a development broker from this build, Debian's
//! headless Chromium with a fake camera and microphone, driven by
//! `tests/console/e2e.mjs` (playwright-core) through the whole consultation, and the
//! console's own unit tests (`console/tests`) under Node's test runner.
//!
//! Needs `node` (20 or later), `npm` and `/usr/bin/chromium`. When Chromium is missing
//! and the test runs as root with apt-get, it installs it; `npm ci` installs
//! playwright-core (never a browser download). `.ci/run` installs both up front.
//!
//! The broker and the browser run in a network namespace of their own
//! (`teleconsult-e2e-<pid>`, made with `ip netns` and deleted afterwards), so that the
//! flow can cut their network (a `tc` qdisc on the namespace's loopback) to see the
//! consult room recover, without touching the host's. The flow can also have the
//! broker killed (SIGKILL) and started again on the same data and ports mid-consult
//! (`BrokerRestarts`), to see both rooms rejoin it by themselves. Where no namespace can be made
//! (not root, no `ip`), they use the host's network and that step is skipped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_teleconsult");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser flow, hard limit.
const E2E_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// A first start makes a PKI and hashes every demo user's password (argon2).
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn the_console_books_consults_and_relays_media_in_chromium() {
    let chromium = chromium();
    let node = node();
    let e2e_dir = Path::new(MANIFEST_DIR).join("tests/console");
    playwright(&e2e_dir);
    let artifacts = artifacts_dir();
    // Declared before the broker, so that it is deleted after the broker stopped.
    let network = NetworkNamespace::create();
    match &network {
        Ok(namespace) => println!(
            "network namespace {}: the broker and the browser run in it",
            namespace.name
        ),
        Err(reason) => println!(
            "no network namespace of our own ({reason}): the broker and the browser use \
             the host's network, and the network-drop step is skipped"
        ),
    }
    let broker = Broker::start(&artifacts, network.as_ref().ok());
    println!(
        "broker: console {}, data {}",
        broker.console_url,
        broker.data_dir.display()
    );

    let users = demo_users(&broker.data_dir.join("console-demo-users.tsv"));
    let mut command = command_in(network.as_ref().ok().map(|n| n.name.as_str()), &node);
    match &network {
        Ok(namespace) => command.env("TELECONSULT_E2E_NETNS", &namespace.name),
        Err(reason) => command.env("TELECONSULT_E2E_NO_NETWORK_DROP", reason),
    };
    command
        .arg(e2e_dir.join("e2e.mjs"))
        .current_dir(MANIFEST_DIR)
        .env("TELECONSULT_CONSOLE_URL", &broker.console_url)
        .env("TELECONSULT_E2E_USERS", users.to_string())
        .env("TELECONSULT_E2E_ARTIFACTS", &artifacts)
        .env("TELECONSULT_E2E_CA", broker.data_dir.join("pki/ca.pem"))
        .env("TELECONSULT_CHROMIUM", &chromium);
    // The flow asks for the broker to crash and come back by writing RESTART_REQUEST;
    // RESTART_DONE says it is listening again.
    let restarts = BrokerRestarts::serve(broker, &artifacts);
    command.env("TELECONSULT_E2E_RESTART_DIR", &artifacts);
    let (status, output) = run_with_timeout(command, E2E_TIMEOUT);
    drop(restarts);
    match status {
        Some(status) => assert!(
            status.success(),
            "the console end-to-end test failed ({status}); screenshots and the broker's log are in {}\n{output}",
            artifacts.display()
        ),
        None => panic!(
            "the console end-to-end test did not finish within {} s; screenshots and the broker's log are in {}\n{output}",
            E2E_TIMEOUT.as_secs(),
            artifacts.display()
        ),
    }
}

/// The console's unit tests (codecs, i18n, time), written for `node --test`.
#[test]
fn the_console_unit_tests_pass_under_node() {
    let tests = Path::new(MANIFEST_DIR).join("console/tests");
    if !tests.is_dir() {
        println!("no console/tests; nothing to run");
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            [".test.mjs", ".test.js"]
                .iter()
                .any(|end| name.ends_with(end))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "console/tests has no *.test.mjs files");
    let mut command = Command::new(node());
    command.arg("--test").args(&files).current_dir(MANIFEST_DIR);
    let (status, output) = run_with_timeout(command, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "node --test console/tests: {status:?}\n{output}"
    );
}

// ---- prerequisites ------------------------------------------------------------

/// Debian's Chromium: `TELECONSULT_CHROMIUM`, or /usr/bin/chromium, installed with
/// apt-get when missing and we may.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("TELECONSULT_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return path;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = Command::new("apt-get").arg("--version").output().is_ok();
    assert!(
        root && apt,
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`) or \
         set TELECONSULT_CHROMIUM to a Chromium binary"
    );
    println!("{CHROMIUM} is missing: installing it with apt-get");
    for args in [&["update"][..], &["install", "-y", "chromium"][..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("running apt-get");
        assert!(status.success(), "apt-get {args:?} failed: {status}");
    }
    assert!(
        path.exists(),
        "apt-get installed chromium but not {CHROMIUM}"
    );
    path
}

/// Node.js 20 or later.
fn node() -> PathBuf {
    let output = Command::new("node").arg("--version").output();
    let version = match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => panic!("node is missing: install Node.js 20 or later (and npm)"),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version} is too old: Node.js 20 or later is needed"
    );
    PathBuf::from("node")
}

/// playwright-core and axe-core from tests/console/package-lock.json (`npm ci`; it
/// downloads no browser).
fn playwright(e2e_dir: &Path) {
    let installed = ["playwright-core", "axe-core"].iter().all(|package| {
        e2e_dir
            .join(format!("node_modules/{package}/package.json"))
            .exists()
    });
    if installed {
        return;
    }
    println!(
        "installing playwright-core and axe-core: npm ci in {}",
        e2e_dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(e2e_dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .expect("npm is missing: install npm (Node.js 20 or later)");
    assert!(
        status.success(),
        "npm ci in {} failed: {status}",
        e2e_dir.display()
    );
}

/// `target/console-e2e` (under CARGO_TARGET_DIR when set), emptied.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target"));
    let target = if target.is_relative() {
        Path::new(MANIFEST_DIR).join(target)
    } else {
        target
    };
    let dir = target.join("console-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the artifacts directory");
    dir
}

/// The demo users' console passwords, as JSON `[{user, password, role, institution}]`.
fn demo_users(tsv: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(tsv).unwrap_or_else(|e| panic!("reading {}: {e}", tsv.display()));
    let users: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert_eq!(columns.len(), 4, "{}: bad line {line:?}", tsv.display());
            serde_json::json!({
                "user": columns[0],
                "password": columns[1],
                "role": columns[2],
                "institution": columns[3],
            })
        })
        .collect();
    assert!(!users.is_empty(), "{} lists no users", tsv.display());
    serde_json::Value::Array(users)
}

// ---- the broker -----------------------------------------------------------------

/// A development broker with its console, in a temporary directory; stopped when
/// dropped (also when the test fails).
struct Broker {
    child: Child,
    console_url: String,
    data_dir: PathBuf,
    how: Launch,
}

/// How the broker is started: the same every time, ports included, so that a restart
/// comes back where the browsers look for it.
struct Launch {
    directory: tempfile::TempDir,
    data_dir: PathBuf,
    /// The gRPC and console addresses.
    listen: [String; 2],
    namespace: Option<String>,
    log: PathBuf,
}

impl Broker {
    fn start(artifacts: &Path, network: Option<&NetworkNamespace>) -> Broker {
        let directory = tempfile::tempdir().unwrap();
        let how = Launch {
            data_dir: directory.path().join("data"),
            directory,
            listen: [free_port(), free_port()].map(|port| format!("127.0.0.1:{port}")),
            namespace: network.map(|n| n.name.clone()),
            log: artifacts.join("broker.log"),
        };
        let (child, console_url) = how.launch();
        Broker {
            child,
            console_url,
            data_dir: how.data_dir.clone(),
            how,
        }
    }

    /// Kills the broker outright (SIGKILL, as a crash or a power cut would) and starts
    /// it again on the same data and ports.
    fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.child, self.console_url) = self.how.launch();
    }
}

impl Launch {
    /// Starts `teleconsult serve` and waits for its console: the process and the
    /// console's address.
    fn launch(&self) -> (Child, String) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let [listen, console_listen] = &self.listen;
        let mut child = command_in(self.namespace.as_deref(), BINARY)
            .current_dir(self.directory.path())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", listen, "--console-listen", console_listen])
            .env_remove("TELECONSULT_CONFIG")
            .env_remove("TELECONSULT_DATA_DIR")
            .env_remove("TELECONSULT_DATABASE_URL")
            .env_remove("TELECONSULT_CONSOLE_DIR")
            .env(
                "RUST_LOG",
                std::env::var("TELECONSULT_E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting teleconsult serve");
        let stdout = child.stdout.take().unwrap();
        let (found, url) = mpsc::channel();
        // Reads the banner for the console's address, then keeps draining stdout so
        // that the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("console on ")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(url.to_owned());
                }
            }
        });
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            match url.recv_timeout(Duration::from_millis(200)) {
                Ok(url) => return (child, url),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "teleconsult serve exited ({status}) before its console listened; see {}",
                            self.log.display()
                        );
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "teleconsult serve printed no `console on https://…` line within {} s; see {}",
                        BROKER_START_TIMEOUT.as_secs(),
                        self.log.display()
                    )
                }
            }
        }
    }
}

const RESTART_REQUEST: &str = "broker-restart.request";
const RESTART_DONE: &str = "broker-restart.done";

/// Restarts the broker whenever the flow asks, until dropped (which stops the broker).
struct BrokerRestarts {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Broker>>,
}

impl BrokerRestarts {
    fn serve(mut broker: Broker, artifacts: &Path) -> Self {
        let (request, done) = (
            artifacts.join(RESTART_REQUEST),
            artifacts.join(RESTART_DONE),
        );
        let _ = std::fs::remove_file(&request);
        let _ = std::fs::remove_file(&done);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if std::fs::remove_file(&request).is_ok() {
                    let started = Instant::now();
                    broker.crash_and_restart();
                    println!(
                        "broker killed (SIGKILL) and started again in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    std::fs::write(&done, "").unwrap();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            broker
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BrokerRestarts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Dropping the broker stops it.
            let _ = thread.join();
        }
    }
}

/// A port nothing listens on now. (In the test's own network namespace nothing else
/// runs; on the host's network another process could take it in between, which the
/// broker would then report.)
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SIGTERM first: the broker shuts down in order (and flushes its log).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the network namespace ---------------------------------------------------------

/// A network namespace of the test's own, with its loopback up and nothing else: the broker and the browser talk over 127.0.0.1 in it, and
/// e2e.mjs may cut that network with `tc` (the host's loopback is never touched).
/// Deleted when dropped, also when the test fails; the kernel frees it once its last
/// process exited.
struct NetworkNamespace {
    name: String,
}

impl NetworkNamespace {
    /// `teleconsult-e2e-<pid>`, or why it cannot be made here (not root, no `ip`).
    fn create() -> Result<NetworkNamespace, String> {
        delete_stale_namespaces();
        let name = format!("{NAMESPACE_PREFIX}{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let namespace = NetworkNamespace { name };
        let name = namespace.name.as_str();
        // No multicast route: the broker must not need one (it does not resolve mDNS
        // candidates; see relay/media.rs).
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        if let Err(error) = ip(&["netns", "delete", &self.name]) {
            eprintln!("could not delete network namespace {}: {error}", self.name);
        }
    }
}

const NAMESPACE_PREFIX: &str = "teleconsult-e2e-";

/// Namespaces left by runs that were killed before they could delete theirs (their
/// test process is gone); those of a run still going are left alone.
fn delete_stale_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

/// Runs `ip args…`; its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip` cannot run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`ip {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// A command for `program`, run inside `namespace` when there is one. `ip netns exec`
/// execs the program in its own process, so the child's id is the program's.
fn command_in(namespace: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

// ---- running a child with a deadline ------------------------------------------------

/// Runs `command` in a process group of its own, printing its output as it comes
/// (the test harness shows it on failure) and returning it; after `limit` the whole
/// group (node and the browsers it started) is killed and the status is `None`.
fn run_with_timeout(mut command: Command, limit: Duration) -> (Option<ExitStatus>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let group = child.id();
    let (lines, output) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                println!("{line}");
                let _ = lines.send(line);
            }
        })
    })
    .collect();
    drop(lines);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                kill_group(group);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // Browsers left behind by a failed run would hold the pipes open.
    kill_group(group);
    for reader in readers {
        let _ = reader.join();
    }
    (status, output.iter().collect::<Vec<_>>().join("\n"))
}

/// SIGKILL to the process group `group` (and nothing else). The `--` matters: without
/// it procps-ng's kill (4.0) takes `-PGID` for an option and signals far more than
/// the group.
fn kill_group(group: u32) {
    assert!(group > 1, "not a process group of ours: {group}");
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}
