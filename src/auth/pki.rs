//! The deployment's certificate authority: a CA, the broker's server certificate,
//! client certificates naming user (CN), institution (O) and role (OU), and the CRL.
//!
//! [`CertificateAuthority`] works on PEM text and is what tests use directly;
//! [`PkiDirectory`] keeps the same material in files (see certs/README.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use ring::rand::SecureRandom;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertifiedKeyPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl CertifiedKeyPem {
    /// SHA-256 of the certificate (DER), lowercase hex: how the audit log names it.
    pub fn fingerprint(&self) -> Result<String, PkiError> {
        Ok(fingerprint(&pem_to_der(&self.cert_pem)?))
    }
}

/// The period a certificate is valid for.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (tolerating clock skew between broker and clients) for `days`.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// Who a client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSubject {
    pub user: String,
    pub institution: String,
    pub role: String,
}

/// A revoked certificate as listed in the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Big-endian serial number bytes.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
}

pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    // Positive and without a leading zero byte, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// A new self-signed CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "teleconsult");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let validity = Validity::days(3650);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The broker's certificate for the given DNS names and IP addresses.
    pub fn issue_server(
        &self,
        subject_alt_names: &[String],
        validity: Validity,
    ) -> Result<CertifiedKeyPem, PkiError> {
        let first = subject_alt_names.first().ok_or_else(|| {
            PkiError::Invalid("a server certificate needs at least one name".into())
        })?;
        let mut params = CertificateParams::new(subject_alt_names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(params, validity)
    }

    /// A user's certificate: CN = user, O = institution, OU = role.
    pub fn issue_client(
        &self,
        subject: &ClientSubject,
        validity: Validity,
    ) -> Result<CertifiedKeyPem, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, subject.user.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, subject.institution.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, subject.role.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(params, validity)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        validity: Validity,
    ) -> Result<CertifiedKeyPem, PkiError> {
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CRL listing `revoked`, valid for `valid_days`.
    pub fn crl(
        &self,
        number: u64,
        revoked: &[Revocation],
        valid_days: i64,
    ) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(valid_days),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|revocation| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&revocation.serial),
                    revocation_time: revocation.revoked_at,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|error| PkiError::Invalid(format!("not a PEM certificate: {error}")))
}

pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The serial number of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = pem_to_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|error| PkiError::Invalid(format!("unreadable certificate: {error}")))?;
    Ok(cert.raw_serial().to_vec())
}

/// The CRL number and revoked serials of a PEM CRL.
pub fn read_crl(crl_pem: &str) -> Result<(u64, Vec<Revocation>), PkiError> {
    use rustls::pki_types::{CertificateRevocationListDer, pem::PemObject};
    let der = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes())
        .map_err(|error| PkiError::Invalid(format!("not a PEM CRL: {error}")))?;
    let (_, crl) = x509_parser::parse_x509_crl(&der)
        .map_err(|error| PkiError::Invalid(format!("unreadable CRL: {error}")))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|entry| Revocation {
            serial: entry.raw_serial().to_vec(),
            revoked_at: entry.revocation_date.to_datetime(),
        })
        .collect();
    Ok((number, revoked))
}

/// The files of a PKI directory:
///
/// ```text
/// ca.pem  ca.key.pem  server.pem  server.key.pem  crl.pem
/// clients/<user>.pem  clients/<user>.key.pem
/// ```
#[derive(Debug, Clone)]
pub struct PkiDirectory {
    root: PathBuf,
}

impl PkiDirectory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key.pem")
    }

    pub fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }

    pub fn client_cert(&self, user: &str) -> PathBuf {
        self.root.join("clients").join(format!("{user}.pem"))
    }

    pub fn client_key(&self, user: &str) -> PathBuf {
        self.root.join("clients").join(format!("{user}.key.pem"))
    }

    pub fn exists(&self) -> bool {
        self.ca_cert().exists()
    }

    /// Makes a CA, a server certificate for `subject_alt_names` and an empty CRL.
    /// Refuses to overwrite an existing CA.
    pub fn init(&self, ca_name: &str, subject_alt_names: &[String]) -> Result<(), PkiError> {
        if self.exists() {
            return Err(PkiError::Invalid(format!(
                "{} already exists; refusing to replace the CA",
                self.ca_cert().display()
            )));
        }
        let ca = CertificateAuthority::generate(ca_name)?;
        let server = ca.issue_server(subject_alt_names, Validity::days(825))?;
        write_file(&self.ca_key(), &ca.key_pem(), true)?;
        write_file(&self.ca_cert(), ca.cert_pem(), false)?;
        write_file(&self.server_key(), &server.key_pem, true)?;
        write_file(&self.server_cert(), &server.cert_pem, false)?;
        write_file(&self.crl(), &ca.crl(1, &[], 30)?, false)?;
        Ok(())
    }

    pub fn authority(&self) -> Result<CertificateAuthority, PkiError> {
        let cert = read_file(&self.ca_cert())?;
        let key = read_file(&self.ca_key())?;
        CertificateAuthority::load(&cert, &key)
    }

    /// Issues a client certificate into `clients/`, replacing an earlier one.
    pub fn issue_client(
        &self,
        subject: &ClientSubject,
        validity: Validity,
    ) -> Result<CertifiedKeyPem, PkiError> {
        let issued = self.authority()?.issue_client(subject, validity)?;
        write_file(&self.client_key(&subject.user), &issued.key_pem, true)?;
        write_file(&self.client_cert(&subject.user), &issued.cert_pem, false)?;
        Ok(issued)
    }

    /// Adds the certificate to the CRL and re-signs it. A running broker picks up the
    /// new CRL at its next handshake.
    pub fn revoke(&self, cert_pem: &str) -> Result<Vec<u8>, PkiError> {
        let authority = self.authority()?;
        let serial = serial_of(cert_pem)?;
        let (number, mut revoked) = match fs::read_to_string(self.crl()) {
            Ok(crl) => read_crl(&crl)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (0, Vec::new()),
            Err(error) => return Err(io_error(&self.crl())(error)),
        };
        if !revoked.iter().any(|r| r.serial == serial) {
            revoked.push(Revocation {
                serial: serial.clone(),
                revoked_at: OffsetDateTime::now_utc(),
            });
        }
        let crl = authority.crl(number + 1, &revoked, 30)?;
        write_file(&self.crl(), &crl, false)?;
        Ok(serial)
    }
}

pub fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_error(path))
}

/// Writes atomically (temporary file, then rename) so that a broker reloading the CRL
/// never reads half a file; private keys are readable by the owner only.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(io_error(&temporary))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_round_trips_through_the_crl() {
        let directory = tempfile::tempdir().unwrap();
        let pki = PkiDirectory::new(directory.path());
        pki.init("test CA", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let subject = ClientSubject {
            user: "biru-nurse-dawa".into(),
            institution: "biru-county-hospital".into(),
            role: "clinic_staff".into(),
        };
        let issued = pki.issue_client(&subject, Validity::days(1)).unwrap();
        let serial = pki.revoke(&issued.cert_pem).unwrap();
        let (number, revoked) = read_crl(&read_file(&pki.crl()).unwrap()).unwrap();
        assert_eq!(number, 2);
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].serial, serial);
        // Revoking twice lists it once.
        pki.revoke(&issued.cert_pem).unwrap();
        let (_, revoked) = read_crl(&read_file(&pki.crl()).unwrap()).unwrap();
        assert_eq!(revoked.len(), 1);
    }

    #[test]
    fn init_refuses_to_replace_a_ca() {
        let directory = tempfile::tempdir().unwrap();
        let pki = PkiDirectory::new(directory.path());
        pki.init("test CA", &["localhost".into()]).unwrap();
        assert!(pki.init("test CA", &["localhost".into()]).is_err());
    }
}
