//! What a verified client certificate says about its holder, and the per-connection
//! information the server hands to every request on that connection.

use std::net::SocketAddr;
use std::sync::Arc;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::pki::fingerprint;

/// The subject of a client certificate: CN = user, O = institution, OU = role. These
/// are claims until the API has matched them against the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub user: String,
    pub institution: String,
    pub role: String,
    /// SHA-256 of the certificate (DER), lowercase hex.
    pub fingerprint: String,
    /// Serial number, lowercase hex.
    pub serial: String,
}

#[derive(Debug, thiserror::Error)]
#[error("unreadable client certificate: {0}")]
pub struct IdentityError(String);

fn single_attribute<'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    name: &str,
) -> Result<String, IdentityError> {
    let first = values
        .next()
        .ok_or_else(|| IdentityError(format!("the subject has no {name}")))?;
    if values.next().is_some() {
        return Err(IdentityError(format!(
            "the subject has more than one {name}"
        )));
    }
    first
        .as_str()
        .map(str::to_owned)
        .map_err(|_| IdentityError(format!("the subject's {name} is not a string")))
}

impl CertificateIdentity {
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|error| IdentityError(error.to_string()))?;
        let subject = cert.subject();
        Ok(Self {
            user: single_attribute(subject.iter_common_name(), "CN")?,
            institution: single_attribute(subject.iter_organization(), "O")?,
            role: single_attribute(subject.iter_organizational_unit(), "OU")?,
            fingerprint: fingerprint(der),
            serial: hex::encode(cert.raw_serial()),
        })
    }
}

/// Which of the broker's ports a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The gRPC port: mutual TLS, a client certificate on every connection.
    Mutual,
    /// The web console's port: server-authenticated TLS; callers present a web
    /// session cookie.
    Console,
}

/// Known about a connection once its TLS handshake has completed; tonic puts it in
/// the extensions of every request on the connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub channel: Channel,
    pub remote_addr: Option<SocketAddr>,
    /// The verified client certificate's identity; `None` if it could not be read.
    pub identity: Option<Arc<CertificateIdentity>>,
}
