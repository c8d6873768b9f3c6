//! Forwarding the audit log to a syslog-over-TLS repository started by the test, and
//! the signed checkpoints that make a cut tail detectable, on both backends.
//!
//! The PostgreSQL tests need `TELECONSULT_TEST_DATABASE_URL` (see store_conformance.rs);
//! without it they are skipped. Set `TEST_LOG` to see the forwarder's logs.

#[allow(dead_code, reason = "shared with the store conformance suite")]
#[path = "store_conformance/backends.rs"]
mod backends;
#[path = "audit_forwarding/checkpoints.rs"]
mod checkpoints;
#[path = "audit_forwarding/forwarding.rs"]
mod forwarding;
#[path = "audit_forwarding/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::json;
use teleconsult::audit::syslog::{ForwarderTiming, SyslogSettings};
use teleconsult::audit::{Actor, AuditEntry, AuditRecord, Outcome, export};
use teleconsult::auth::pki::{CertificateAuthority, ClientSubject, Validity};
use teleconsult::store::SharedStore;
use tempfile::TempDir;
use tokio::sync::mpsc;

use receiver::Message;

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Appends records `numbers`, a few of them refusals, one with Tibetan and Chinese text.
async fn append(store: &SharedStore, numbers: std::ops::RangeInclusive<u64>) {
    for n in numbers {
        let outcome = if n % 7 == 0 {
            Outcome::Denied
        } else {
            Outcome::Ok
        };
        let entry = AuditEntry::new(
            Actor::system("test"),
            "directory.get_user",
            format!("user:u{n}"),
            outcome,
        )
        .details(json!({ "n": n, "note": "ནག་ཆུ། 那曲" }));
        store.append_audit(entry).await.expect("appending a record");
    }
}

/// A repository's CA, its TLS configuration, and the files a forwarder is given.
struct RepositoryPki {
    ca: CertificateAuthority,
    directory: TempDir,
}

impl RepositoryPki {
    fn new() -> Self {
        let ca = CertificateAuthority::generate("audit repository CA").unwrap();
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let subject = ClientSubject {
            user: "broker".into(),
            institution: "platform".into(),
            role: "system".into(),
        };
        let client = ca.issue_client(&subject, Validity::days(1)).unwrap();
        std::fs::write(directory.path().join("client.pem"), &client.cert_pem).unwrap();
        std::fs::write(directory.path().join("client.key.pem"), &client.key_pem).unwrap();
        Self { ca, directory }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// The repository's side: a certificate for `localhost`; with `mutual`, client
    /// certificates from this CA required.
    fn receiver_config(&self, mutual: bool) -> Arc<ServerConfig> {
        let issued = self
            .ca
            .issue_server(&["localhost".to_owned()], Validity::days(1))
            .unwrap();
        let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mutual {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca.cert_pem().as_bytes()).unwrap())
                .unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// The forwarder's side, paced for tests.
    fn settings(&self, address: std::net::SocketAddr, client_certificate: bool) -> SyslogSettings {
        SyslogSettings {
            address: address.to_string(),
            server_name: "localhost".into(),
            ca: self.path("ca.pem"),
            client_identity: client_certificate
                .then(|| (self.path("client.pem"), self.path("client.key.pem"))),
            app_name: "teleconsult-test".into(),
            hostname: Some("broker-1.test".into()),
            timing: ForwarderTiming {
                poll_interval: Duration::from_millis(20),
                confirm_after: Duration::from_millis(300),
                retry_min: Duration::from_millis(50),
                retry_max: Duration::from_millis(400),
                io_timeout: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(5),
                batch: 16,
            },
        }
    }
}

/// Everything a repository received, by seq; a duplicate must repeat its original.
#[derive(Default)]
struct Received {
    by_seq: BTreeMap<u64, Message>,
    duplicates: usize,
}

impl Received {
    fn add(&mut self, message: Message) {
        match self.by_seq.get(&message.seq) {
            Some(first) => {
                assert_eq!(first, &message, "a resent record must be identical");
                self.duplicates += 1;
            }
            None => {
                self.by_seq.insert(message.seq, message);
            }
        }
    }

    fn has_all(&self, last: u64) -> bool {
        (1..=last).all(|seq| self.by_seq.contains_key(&seq))
    }

    /// Takes messages from `inbox` until `done`, failing after 30 s.
    async fn until(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Message>,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while !done(self) {
                self.add(inbox.recv().await.expect("the receiver is alive"));
            }
        })
        .await;
        if waited.is_err() {
            let missing: Vec<u64> = (1..=self.by_seq.keys().max().copied().unwrap_or(0))
                .filter(|seq| !self.by_seq.contains_key(seq))
                .collect();
            panic!(
                "timed out waiting for {what}: {} received, missing {missing:?}",
                self.by_seq.len()
            );
        }
    }

    /// Each of `records` arrived as the message it should be.
    fn check(&self, records: &[AuditRecord]) {
        for record in records {
            let message = &self.by_seq[&record.seq];
            let pri = if record.entry.outcome == Outcome::Ok {
                85
            } else {
                84
            };
            assert_eq!(message.pri, pri, "record {}", record.seq);
            assert_eq!(
                (message.hash.as_str(), message.prev.as_str()),
                (record.hash.as_str(), record.prev_hash.as_str())
            );
            assert_eq!(message.body, export::json_line(record));
            assert_eq!(message.msgid, record.entry.action);
            assert_eq!(
                (message.hostname.as_str(), message.app_name.as_str()),
                ("broker-1.test", "teleconsult-test")
            );
            assert_eq!(message.procid, std::process::id().to_string());
            assert!(message.timestamp.ends_with('Z') && message.timestamp.len() == 27);
        }
    }
}
