//! Signed checkpoints of the chain's head. The hash chain shows that no stored record
//! was changed, but not that the newest ones are still there: a log cut short after
//! record N is a valid chain of N records. So the broker periodically signs
//! `(seq, hash)` of its head with its TLS key; a later verify that finds the record at
//! a checkpoint's seq missing, or with another hash, knows the tail was cut or rewritten.
//!
//! Keys are ECDSA P-256 (what `teleconsult pki` issues), signatures ASN.1 DER over
//! SHA-256, so `openssl dgst -sha256 -verify` can check one as well.

use std::fmt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::AuditRecord;

/// The action of the audit record that announces a checkpoint (and carries it to the
/// audit repository with the rest of the log).
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";

/// Bumped if the signed encoding ever changes.
const SIGNED_TAG: &[u8] = b"teleconsult-audit-checkpoint-v1";

/// The DER prefix of every P-256 SubjectPublicKeyInfo with an uncompressed point:
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING header.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("{0}")]
    Key(String),
}

fn file_error(path: &Path, problem: impl ToString) -> CheckpointError {
    CheckpointError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The head `(seq, hash)` of the chain at `at`, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub at: OffsetDateTime,
    /// ECDSA P-256 SHA-256, ASN.1 DER, lowercase hex.
    pub signature: String,
    /// SHA-256 of the signing key's SubjectPublicKeyInfo (DER), lowercase hex.
    pub key_fingerprint: String,
}

/// What is signed: fixed order, the hash length-prefixed.
fn signed_bytes(seq: u64, hash: &str, at: OffsetDateTime) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    bytes.extend_from_slice(&(SIGNED_TAG.len() as u32).to_be_bytes());
    bytes.extend_from_slice(SIGNED_TAG);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&((at.unix_timestamp_nanos() / 1_000) as i64).to_be_bytes());
    bytes.extend_from_slice(&(hash.len() as u32).to_be_bytes());
    bytes.extend_from_slice(hash.as_bytes());
    bytes
}

/// The P-256 point of a PEM certificate and the fingerprint of its key.
fn certificate_key(cert_pem: &[u8]) -> Result<(Vec<u8>, String), String> {
    use rustls::pki_types::CertificateDer;
    let der =
        CertificateDer::from_pem_slice(cert_pem).map_err(|e| format!("no certificate: {e}"))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der)
        .map_err(|error| format!("unreadable certificate: {error}"))?;
    let spki = certificate.public_key().raw;
    match spki.strip_prefix(P256_SPKI_PREFIX) {
        Some(point) if point.len() == 65 => Ok((point.to_vec(), hex::encode(Sha256::digest(spki)))),
        _ => Err("the certificate's key is not ECDSA P-256".to_owned()),
    }
}

/// Signs checkpoints with the broker's private key.
pub struct CheckpointSigner {
    key: EcdsaKeyPair,
    fingerprint: String,
    random: SystemRandom,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// The broker's certificate and key files (`tls.server_cert`, `tls.server_key`).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, CheckpointError> {
        let cert_pem = std::fs::read(cert).map_err(|e| file_error(cert, e))?;
        let key_pem = std::fs::read(key).map_err(|e| file_error(key, e))?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|error| match error {
            CheckpointError::Key(problem) => file_error(key, problem),
            other => other,
        })
    }

    /// A key (PKCS#8 or SEC1 PEM) and the certificate that holds its public half.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CheckpointError> {
        let random = SystemRandom::new();
        let pkcs8 = match PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|error| CheckpointError::Key(format!("no private key: {error}")))?
        {
            PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
            PrivateKeyDer::Sec1(der) => sec1_to_pkcs8(der.secret_sec1_der()),
            _ => return Err(CheckpointError::Key("the key is not ECDSA P-256".into())),
        };
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &random)
                .map_err(|error| CheckpointError::Key(format!("not an ECDSA P-256 key: {error}")))?;
        let (point, fingerprint) = certificate_key(cert_pem).map_err(CheckpointError::Key)?;
        if point != key.public_key().as_ref() {
            return Err(CheckpointError::Key(
                "the key does not belong to the certificate".into(),
            ));
        }
        Ok(Self {
            key,
            fingerprint,
            random,
        })
    }

    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A checkpoint of `record`, signed now.
    pub fn sign(&self, record: &AuditRecord) -> Result<Checkpoint, CheckpointError> {
        let at = super::now_micros();
        let signature = self
            .key
            .sign(&self.random, &signed_bytes(record.seq, &record.hash, at))
            .map_err(|_| CheckpointError::Key("signing failed: no random numbers".into()))?;
        Ok(Checkpoint {
            seq: record.seq,
            hash: record.hash.clone(),
            at,
            signature: hex::encode(signature.as_ref()),
            key_fingerprint: self.fingerprint.clone(),
        })
    }
}

/// Wraps a SEC1 `EC PRIVATE KEY` (what `openssl ecparam -genkey` writes) as the
/// PKCS#8 structure ring reads: SEQUENCE { 0, { id-ecPublicKey, prime256v1 }, key }.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    // P256_SPKI_PREFIX[2..23] is the AlgorithmIdentifier.
    let mut content = vec![0x02, 0x01, 0x00];
    content.extend_from_slice(&P256_SPKI_PREFIX[2..23]);
    content.extend(der(0x04, sec1));
    der(0x30, &content)
}

/// Checks checkpoints against the broker's certificate.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    point: Vec<u8>,
    fingerprint: String,
}

impl CheckpointVerifier {
    pub fn load(cert: &Path) -> Result<Self, CheckpointError> {
        let pem = std::fs::read(cert).map_err(|e| file_error(cert, e))?;
        Self::from_pem(&pem).map_err(|error| match error {
            CheckpointError::Key(problem) => file_error(cert, problem),
            other => other,
        })
    }

    pub fn from_pem(cert_pem: &[u8]) -> Result<Self, CheckpointError> {
        let (point, fingerprint) = certificate_key(cert_pem).map_err(CheckpointError::Key)?;
        Ok(Self { point, fingerprint })
    }

    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn verify(&self, checkpoint: &Checkpoint) -> SignatureCheck {
        if checkpoint.key_fingerprint != self.fingerprint {
            return SignatureCheck::OtherKey {
                certificate_key: self.fingerprint.clone(),
            };
        }
        let Ok(signature) = hex::decode(&checkpoint.signature) else {
            return SignatureCheck::Invalid;
        };
        let message = signed_bytes(checkpoint.seq, &checkpoint.hash, checkpoint.at);
        match UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&message, &signature)
        {
            Ok(()) => SignatureCheck::Valid,
            Err(_) => SignatureCheck::Invalid,
        }
    }
}

/// Whether a checkpoint's signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    /// Forged, or altered since it was signed.
    Invalid,
    /// Signed by a key other than the certificate's: cannot be checked with it.
    OtherKey {
        certificate_key: String,
    },
    /// No certificate to check it with.
    NotChecked,
}

/// What the log holds at a checkpoint's seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogMatch {
    /// The record is there with the checkpointed hash.
    Intact,
    /// The record is gone: the tail was cut.
    Missing,
    /// Another record has its seq: the tail was cut and written again.
    Different { hash: String },
}

/// The latest checkpoint held against the log and the broker's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    pub checkpoint: Checkpoint,
    pub log: LogMatch,
    pub signature: SignatureCheck,
}

impl CheckpointReport {
    /// Compares `checkpoint` with `record`, the log's record at its seq if any.
    pub fn new(
        checkpoint: Checkpoint,
        record: Option<&AuditRecord>,
        verifier: Option<&CheckpointVerifier>,
    ) -> Self {
        let log = match record {
            Some(record) if record.hash == checkpoint.hash => LogMatch::Intact,
            Some(record) => LogMatch::Different {
                hash: record.hash.clone(),
            },
            None => LogMatch::Missing,
        };
        let signature = verifier.map_or(SignatureCheck::NotChecked, |v| v.verify(&checkpoint));
        Self {
            checkpoint,
            log,
            signature,
        }
    }

    /// The log still holds the checkpointed record and the signature is the broker's.
    pub fn is_intact(&self) -> bool {
        self.log == LogMatch::Intact && self.signature == SignatureCheck::Valid
    }

    /// One line per problem found; empty when intact.
    pub fn problems(&self) -> Vec<String> {
        let checkpoint = &self.checkpoint;
        let at = checkpoint
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| checkpoint.at.to_string());
        let mut problems = Vec::new();
        match &self.log {
            LogMatch::Intact => {}
            LogMatch::Missing => problems.push(format!(
                "truncated or rewritten after checkpoint {} signed at {at}: record {} is missing",
                checkpoint.seq, checkpoint.seq
            )),
            LogMatch::Different { hash } => problems.push(format!(
                "truncated or rewritten after checkpoint {} signed at {at}: record {} has hash {hash}, the checkpoint says {}",
                checkpoint.seq, checkpoint.seq, checkpoint.hash
            )),
        }
        match &self.signature {
            SignatureCheck::Valid => {}
            SignatureCheck::Invalid => problems.push(format!(
                "checkpoint {} signed at {at}: the signature does not verify (forged or altered)",
                checkpoint.seq
            )),
            SignatureCheck::OtherKey { certificate_key } => problems.push(format!(
                "checkpoint {} signed at {at} by key {}, not by the certificate's key {certificate_key}: give the certificate in use then",
                checkpoint.seq, checkpoint.key_fingerprint
            )),
            SignatureCheck::NotChecked => problems.push(format!(
                "checkpoint {} signed at {at}: signature not checked, no server certificate given",
                checkpoint.seq
            )),
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditEntry, Outcome, chain};
    use crate::auth::pki::{CertificateAuthority, Validity};

    fn server(ca: &CertificateAuthority) -> (Vec<u8>, Vec<u8>) {
        let issued = ca
            .issue_server(&["localhost".to_owned()], Validity::days(1))
            .unwrap();
        (issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())
    }

    fn record() -> AuditRecord {
        let entry = AuditEntry::new(Actor::system("test"), "test.event", "-", Outcome::Ok);
        chain::seal(None, entry)
    }

    #[test]
    fn a_checkpoint_verifies_with_its_certificate_only() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (cert, key) = server(&ca);
        let signer = CheckpointSigner::from_pem(&cert, &key).unwrap();
        let checkpoint = signer.sign(&record()).unwrap();
        let verifier = CheckpointVerifier::from_pem(&cert).unwrap();
        assert_eq!(verifier.key_fingerprint(), signer.key_fingerprint());
        assert_eq!(verifier.verify(&checkpoint), SignatureCheck::Valid);

        let mut moved = checkpoint.clone();
        moved.seq += 1;
        assert_eq!(verifier.verify(&moved), SignatureCheck::Invalid);

        let (other_cert, _) = server(&ca);
        let other = CheckpointVerifier::from_pem(&other_cert).unwrap();
        assert!(matches!(
            other.verify(&checkpoint),
            SignatureCheck::OtherKey { .. }
        ));
    }

    #[test]
    fn a_key_must_match_its_certificate() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (cert, _) = server(&ca);
        let (_, other_key) = server(&ca);
        let error = CheckpointSigner::from_pem(&cert, &other_key).unwrap_err();
        assert!(error.to_string().contains("does not belong"), "{error}");
    }

    #[test]
    fn sec1_keys_are_rewrapped_as_ring_reads_them() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (_, key) = server(&ca);
        let pkcs8 = PrivateKeyDer::from_pem_slice(&key).unwrap();
        let pkcs8 = pkcs8.secret_der();
        // SEQUENCE header (3), version (3), AlgorithmIdentifier (21), OCTET STRING.
        assert_eq!(
            (pkcs8[27], usize::from(pkcs8[28])),
            (0x04, pkcs8.len() - 29)
        );
        assert_eq!(sec1_to_pkcs8(&pkcs8[29..]), pkcs8);
    }

    #[test]
    fn problems_name_the_checkpoint() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (cert, key) = server(&ca);
        let signer = CheckpointSigner::from_pem(&cert, &key).unwrap();
        let verifier = CheckpointVerifier::from_pem(&cert).unwrap();
        let record = record();
        let intact = CheckpointReport::new(
            signer.sign(&record).unwrap(),
            Some(&record),
            Some(&verifier),
        );
        assert!(intact.is_intact() && intact.problems().is_empty());
        let cut = CheckpointReport::new(signer.sign(&record).unwrap(), None, Some(&verifier));
        assert!(!cut.is_intact());
        assert!(
            cut.problems()[0].starts_with("truncated or rewritten after checkpoint 1 signed at ")
        );
    }
}
