//! The rules of password sign-in for the web console: what a password must be, when
//! repeated failures lock an account, how long a browser session lasts.

use time::Duration;

use super::InvalidValue;

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// A password an admin or user chooses: long enough, not absurdly long (argon2 reads
/// all of it), no control characters.
pub fn check_new_password(password: &str) -> Result<(), InvalidValue> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(InvalidValue::new(format!(
            "must have at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(InvalidValue::new(format!(
            "must have at most {PASSWORD_MAX_CHARS} characters"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(InvalidValue::new("must not contain control characters"));
    }
    Ok(())
}

/// A password offered at sign-in: only its size is checked, so that a policy change
/// never tells an attacker anything.
pub fn check_offered_password(password: &str) -> Result<(), InvalidValue> {
    if password.is_empty() {
        return Err(InvalidValue::new("must not be empty"));
    }
    if password.chars().count() > PASSWORD_MAX_CHARS {
        return Err(InvalidValue::new(format!(
            "must have at most {PASSWORD_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Consecutive failures that lock the account.
    pub max_failures: u32,
    /// How long a lock lasts; an admin setting the password lifts it earlier.
    pub lockout: Duration,
    /// How long a browser session lasts after sign-in.
    pub session_lifetime: Duration,
    /// How long an enrollment token is valid when the admin does not say.
    pub enrollment_default: Duration,
    pub enrollment_max: Duration,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout: Duration::minutes(15),
            session_lifetime: Duration::hours(8),
            enrollment_default: Duration::hours(72),
            enrollment_max: Duration::days(30),
        }
    }
}

impl SignInPolicy {
    /// The validity an admin asked for (`0` = the default), or why it is refused.
    pub fn enrollment_validity(&self, hours: u32) -> Result<Duration, InvalidValue> {
        if hours == 0 {
            return Ok(self.enrollment_default);
        }
        let asked = Duration::hours(i64::from(hours));
        if asked > self.enrollment_max {
            return Err(InvalidValue::new(format!(
                "must be at most {} hours",
                self.enrollment_max.whole_hours()
            )));
        }
        Ok(asked)
    }
}

/// Whether a lock recorded as lasting until `locked_until` (µs) still holds at `now`.
pub fn is_locked(locked_until: Option<i64>, now: i64) -> bool {
    locked_until.is_some_and(|until| until > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_need_ten_characters_counted_as_characters() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("abcdefghij").is_ok());
        // Ten CJK characters are ten characters, not thirty bytes.
        assert!(check_new_password("远程会诊远程会诊远程").is_ok());
        assert!(check_new_password("远程会诊远程会诊远").is_err());
        assert!(check_new_password("abcdefghij\u{0}").is_err());
        assert!(check_new_password(&"x".repeat(257)).is_err());
    }

    #[test]
    fn offered_passwords_are_only_size_checked() {
        assert!(check_offered_password("").is_err());
        assert!(check_offered_password("x").is_ok());
    }

    #[test]
    fn enrollment_validity_defaults_and_caps() {
        let policy = SignInPolicy::default();
        assert_eq!(policy.enrollment_validity(0).unwrap(), Duration::hours(72));
        assert_eq!(policy.enrollment_validity(24).unwrap(), Duration::hours(24));
        assert!(policy.enrollment_validity(24 * 31).is_err());
    }

    #[test]
    fn a_lock_holds_until_its_instant() {
        assert!(is_locked(Some(10), 9));
        assert!(!is_locked(Some(10), 10));
        assert!(!is_locked(None, 0));
    }
}
