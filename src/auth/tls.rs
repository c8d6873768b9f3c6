//! rustls configuration of the broker: TLS 1.3 only, a client certificate required
//! and verified against the deployment's client CA and its CRL. The CRL file is
//! re-read whenever it changes, so a revocation takes effect without a restart.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::sync::mpsc;

use super::identity::CertificateIdentity;

/// Where the broker's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that issues client certificates.
    pub client_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Optional certificate revocation list, PEM.
    pub crl: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// Installs ring as the process-wide rustls provider; harmless if already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if !path.exists() {
        return Err(file_error(path, "file not found"));
    }
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "no PEM certificate in file"));
    }
    Ok(certificates)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    if !path.exists() {
        return Err(file_error(path, "file not found"));
    }
    PrivateKeyDer::from_pem_file(path).map_err(|error| file_error(path, error))
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))
}

/// A client presented a certificate that was refused during the handshake.
#[derive(Debug, Clone)]
pub struct HandshakeRefusal {
    /// What the certificate claims; not verified, since verification failed.
    pub claimed: Option<CertificateIdentity>,
    pub reason: String,
}

/// The revocation list in force, for checks after the handshake: a connection opened
/// before a certificate was revoked must not keep working.
#[derive(Clone, Debug)]
pub struct Revocations(Arc<ReloadingClientVerifier>);

impl Revocations {
    /// Whether the certificate with this serial number (lowercase hex) is revoked,
    /// after re-reading the CRL if its file changed.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.0.current().revoked.contains(serial)
    }
}

/// Builds the server's rustls configuration. Refused client certificates are reported
/// on `refusals` (when it has room) so that they can be audited.
pub fn server_config(
    files: &TlsFiles,
    refusals: Option<mpsc::Sender<HandshakeRefusal>>,
    alpn: &[&[u8]],
) -> Result<(Arc<ServerConfig>, Revocations), TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(&files.client_ca)? {
        roots
            .add(certificate)
            .map_err(|error| file_error(&files.client_ca, error))?;
    }
    let verifier = Arc::new(ReloadingClientVerifier::new(
        Arc::new(roots),
        files.crl.clone(),
        refusals,
    )?);
    let chain = load_certificates(&files.server_cert)?;
    let key = load_private_key(&files.server_key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((Arc::new(config), Revocations(verifier)))
}

/// The web console's TLS: a server certificate (the broker's own, or one browsers
/// already trust), no client certificate asked for (browsers sign in with a
/// password), HTTP/2 and HTTP/1.1 offered so that gRPC-Web works over either.
pub fn console_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let key = load_private_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The file's modification time and length: when either changes, the CRL is re-read.
type FileStamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// What one reading of the CRL file yields.
#[derive(Clone)]
struct Current {
    stamp: Option<FileStamp>,
    verifier: Arc<dyn ClientCertVerifier>,
    /// Serial numbers (lowercase hex) of the revoked certificates.
    revoked: Arc<HashSet<String>>,
}

/// Verifies client certificates with webpki against the client CA and the CRL in
/// force, re-reading the CRL file when it changes. If a changed CRL cannot be read,
/// the previous one stays in force (failing closed) and the problem is logged.
pub struct ReloadingClientVerifier {
    roots: Arc<RootCertStore>,
    hints: Vec<DistinguishedName>,
    crl_path: Option<PathBuf>,
    current: RwLock<Current>,
    refusals: Option<mpsc::Sender<HandshakeRefusal>>,
}

impl std::fmt::Debug for ReloadingClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingClientVerifier")
            .field("crl_path", &self.crl_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingClientVerifier {
    fn new(
        roots: Arc<RootCertStore>,
        crl_path: Option<PathBuf>,
        refusals: Option<mpsc::Sender<HandshakeRefusal>>,
    ) -> Result<Self, TlsError> {
        let stamp = crl_path.as_deref().and_then(stamp);
        let current = Self::build(&roots, crl_path.as_deref(), stamp)?;
        Ok(Self {
            hints: roots.subjects(),
            roots,
            crl_path,
            current: RwLock::new(current),
            refusals,
        })
    }

    fn build(
        roots: &Arc<RootCertStore>,
        crl_path: Option<&Path>,
        stamp: Option<FileStamp>,
    ) -> Result<Current, TlsError> {
        let crls = match crl_path {
            Some(path) => load_crls(path)?,
            None => Vec::new(),
        };
        let mut revoked = HashSet::new();
        for crl in &crls {
            let (_, parsed) = x509_parser::parse_x509_crl(crl).map_err(|error| {
                file_error(crl_path.unwrap_or(Path::new("-")), error.to_string())
            })?;
            revoked.extend(
                parsed
                    .iter_revoked_certificates()
                    .map(|entry| hex::encode(entry.raw_serial())),
            );
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .with_crls(crls)
            .build()?;
        Ok(Current {
            stamp,
            verifier,
            revoked: Arc::new(revoked),
        })
    }

    /// The CRL in force, re-read first if its file changed.
    fn current(&self) -> Current {
        let current = self.current.read().expect("verifier lock");
        let Some(path) = &self.crl_path else {
            return current.clone();
        };
        let now = stamp(path);
        if now == current.stamp {
            return current.clone();
        }
        drop(current);
        let mut current = self.current.write().expect("verifier lock");
        if now != current.stamp {
            match Self::build(&self.roots, Some(path), now) {
                Ok(fresh) => {
                    tracing::info!(path = %path.display(), revoked = fresh.revoked.len(), "certificate revocation list reloaded");
                    *current = fresh;
                }
                Err(error) => {
                    tracing::error!(%error, "new certificate revocation list unusable; keeping the previous one");
                    current.stamp = now;
                }
            }
        }
        current.clone()
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current().verifier
    }

    fn report(&self, end_entity: &CertificateDer<'_>, error: &rustls::Error) {
        let claimed = CertificateIdentity::from_der(end_entity).ok();
        tracing::warn!(
            %error,
            user = claimed.as_ref().map(|c| c.user.as_str()),
            institution = claimed.as_ref().map(|c| c.institution.as_str()),
            "client certificate refused"
        );
        if let Some(refusals) = &self.refusals {
            let refusal = HandshakeRefusal {
                claimed,
                reason: error.to_string(),
            };
            if refusals.try_send(refusal).is_err() {
                tracing::warn!("too many handshake refusals to audit; dropping one");
            }
        }
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| self.report(end_entity, error))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}
