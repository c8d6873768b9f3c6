//! Trust: the deployment's PKI, the TLS configuration that verifies client
//! certificates (with a CRL reloaded without restart), and the identity a verified
//! certificate carries.

pub mod identity;
pub mod pki;
pub mod tls;

pub use identity::{CertificateIdentity, Channel, PeerInfo};
pub mod password;
pub mod web_session;
