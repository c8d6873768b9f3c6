//! The web console's session cookie: a session id signed with the broker's session
//! key (HMAC-SHA256), so that a forged or altered cookie is refused without a database
//! read. Whether the session still holds (not signed out, not expired) is the store's.

use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The cookie's name. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE_NAME: &str = "__Host-teleconsult-session";

#[derive(Clone)]
pub struct SessionKey(hmac::Key);

#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
}

impl SessionKey {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// Reads the key file (32 or more random bytes, hex), making it on first use with
    /// owner-only permissions. Every node of a deployment must share the same file.
    pub fn load_or_create(path: &Path) -> Result<Self, SessionKeyError> {
        let error = |problem: String| SessionKeyError::File {
            path: path.display().to_string(),
            problem,
        };
        if !path.exists() {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| error("the system random source failed".into()))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
            }
            write_private(path, &hex::encode(key)).map_err(|e| error(e.to_string()))?;
            tracing::info!(path = %path.display(), "made a new console session key");
        }
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| error(format!("not hex: {e}")))?;
        if bytes.len() < 32 {
            return Err(error(format!(
                "the key has {} bytes; at least 32 are required",
                bytes.len()
            )));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// The cookie value for session `id`: `id.signature`, both hex.
    pub fn sign(&self, id: &str) -> String {
        let tag = hmac::sign(&self.0, id.as_bytes());
        format!("{id}.{}", hex::encode(tag.as_ref()))
    }

    /// The session id of a cookie value whose signature is valid.
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (id, tag) = value.split_once('.')?;
        let tag = hex::decode(tag).ok()?;
        hmac::verify(&self.0, id.as_bytes(), &tag).ok()?;
        Some(id)
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// A new session id: 128 random bits, hex.
pub fn new_session_id() -> String {
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .expect("the system random source works");
    hex::encode(id)
}

/// What the audit log says of a session: a digest, never the id that the cookie
/// carries.
pub fn audit_ref(id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    hex::encode(&digest.as_ref()[..8])
}

/// The value of our cookie in a `Cookie` request header, if present.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE_NAME).then_some(value)
    })
}

/// The `Set-Cookie` value that stores `value` for `max_age_secs`.
pub fn set_cookie(value: &str, max_age_secs: i64) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Strict"
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_id_verifies_and_an_altered_one_does_not() {
        let key = SessionKey::from_bytes(&[7; 32]);
        let other = SessionKey::from_bytes(&[8; 32]);
        let value = key.sign("00112233445566778899aabbccddeeff");
        assert_eq!(key.verify(&value), Some("00112233445566778899aabbccddeeff"));
        assert_eq!(other.verify(&value), None);
        let altered = value.replacen('0', "1", 1);
        assert_eq!(key.verify(&altered), None);
        assert_eq!(key.verify("no-signature"), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let header = format!("a=1; {COOKIE_NAME}=abc.def; b=2");
        assert_eq!(from_cookie_header(&header), Some("abc.def"));
        assert_eq!(from_cookie_header("a=1"), None);
    }

    #[test]
    fn the_key_file_is_made_once_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/session.key");
        let first = SessionKey::load_or_create(&path).unwrap();
        let again = SessionKey::load_or_create(&path).unwrap();
        assert_eq!(again.verify(&first.sign("x")), Some("x"));
        std::fs::write(dir.path().join("short.key"), "abcd").unwrap();
        assert!(SessionKey::load_or_create(&dir.path().join("short.key")).is_err());
    }
}
