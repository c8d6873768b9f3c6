//! The rules of password sign-in for the web console: what a password must be, when
//! repeated failures lock an account or hold back an address, how long a browser
//! session lasts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

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
    /// Failed sign-ins from one address, whatever accounts they tried, after which
    /// that address is held back for the rest of the lockout window (someone trying
    /// passwords across accounts, or locking every doctor out from one place). 0: no
    /// limit.
    pub max_failures_per_address: u32,
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
            max_failures_per_address: 30,
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

/// How many addresses are remembered at most; beyond it, the stalest are forgotten.
const ADDRESSES_REMEMBERED: usize = 10_000;

/// Recent failed sign-ins by the address they came from (times in µs).
#[derive(Debug, Default)]
pub struct AddressFailures {
    failures: HashMap<IpAddr, VecDeque<i64>>,
}

impl AddressFailures {
    /// Until when (µs) `address` is held back at `now`, if it is: once it has
    /// `max_failures_per_address` failures within the lockout window, until the
    /// oldest of them leaves the window.
    pub fn held_back_until(
        &mut self,
        address: IpAddr,
        now: i64,
        policy: &SignInPolicy,
    ) -> Option<i64> {
        let limit = policy.max_failures_per_address as usize;
        let window = policy.lockout.whole_microseconds() as i64;
        let failures = self.failures.get_mut(&address)?;
        while failures.front().is_some_and(|&at| at <= now - window) {
            failures.pop_front();
        }
        if limit == 0 || failures.len() < limit {
            return None;
        }
        failures.front().map(|&oldest| oldest + window)
    }

    /// Counts a failed sign-in from `address` at `now`.
    pub fn record(&mut self, address: IpAddr, now: i64, policy: &SignInPolicy) {
        if policy.max_failures_per_address == 0 {
            return;
        }
        if self.failures.len() >= ADDRESSES_REMEMBERED && !self.failures.contains_key(&address) {
            let window = policy.lockout.whole_microseconds() as i64;
            self.failures
                .retain(|_, failures| failures.back().is_some_and(|&at| at > now - window));
            if self.failures.len() >= ADDRESSES_REMEMBERED {
                let stalest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, failures)| failures.back().copied())
                    .map(|(address, _)| *address);
                if let Some(stalest) = stalest {
                    self.failures.remove(&stalest);
                }
            }
        }
        let failures = self.failures.entry(address).or_default();
        failures.push_back(now);
        // No more than the limit need be kept to decide.
        while failures.len() > policy.max_failures_per_address as usize {
            failures.pop_front();
        }
    }
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
    fn an_address_with_too_many_failures_is_held_back_until_the_oldest_ages_out() {
        let policy = SignInPolicy {
            max_failures_per_address: 3,
            lockout: Duration::seconds(100),
            ..SignInPolicy::default()
        };
        let second = 1_000_000;
        let (here, there) = ("10.0.0.7".parse().unwrap(), "10.0.0.8".parse().unwrap());
        let mut failures = AddressFailures::default();
        for at in [0, 10, 20] {
            assert_eq!(failures.held_back_until(here, at * second, &policy), None);
            failures.record(here, at * second, &policy);
        }
        assert_eq!(
            failures.held_back_until(here, 30 * second, &policy),
            Some(100 * second)
        );
        // Another address is not affected.
        assert_eq!(failures.held_back_until(there, 30 * second, &policy), None);
        // Once the first failure leaves the window, one more try.
        assert_eq!(failures.held_back_until(here, 100 * second, &policy), None);
        failures.record(here, 100 * second, &policy);
        assert_eq!(
            failures.held_back_until(here, 101 * second, &policy),
            Some(110 * second)
        );
        // No limit at all when it is 0.
        let unlimited = SignInPolicy {
            max_failures_per_address: 0,
            ..policy
        };
        assert_eq!(
            failures.held_back_until(here, 101 * second, &unlimited),
            None
        );
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let policy = SignInPolicy::default();
        let mut failures = AddressFailures::default();
        for n in 0..(ADDRESSES_REMEMBERED as u32 + 50) {
            failures.record(IpAddr::from(n.to_be_bytes()), i64::from(n), &policy);
        }
        assert_eq!(failures.failures.len(), ADDRESSES_REMEMBERED);
    }

    #[test]
    fn a_lock_holds_until_its_instant() {
        assert!(is_locked(Some(10), 9));
        assert!(!is_locked(Some(10), 10));
        assert!(!is_locked(None, 0));
    }
}
