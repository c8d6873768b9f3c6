//! The hash chain: sealing entries into records and verifying stored records.

use sha2::{Digest, Sha256};

use super::{AuditEntry, AuditRecord};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bumped if the encoding ever changes, so that old and new records cannot collide.
const ENCODING_TAG: &[u8] = b"teleconsult-audit-v1";

fn put_field(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buffer.extend_from_slice(bytes);
}

/// The canonical encoding of a record's content: fixed field order, each variable
/// field length-prefixed, so that no two distinct records encode alike.
pub fn canonical_encoding(seq: u64, entry: &AuditEntry) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(256 + entry.details.len());
    put_field(&mut buffer, ENCODING_TAG);
    buffer.extend_from_slice(&seq.to_be_bytes());
    let micros = (entry.at.unix_timestamp_nanos() / 1_000) as i64;
    buffer.extend_from_slice(&micros.to_be_bytes());
    for field in [
        entry.actor.user.as_str(),
        entry.actor.institution.as_str(),
        entry.actor.role.as_str(),
        entry.actor.certificate_fingerprint.as_str(),
        entry.action.as_str(),
        entry.target.as_str(),
    ] {
        put_field(&mut buffer, field.as_bytes());
    }
    match &entry.target_institution {
        Some(institution) => {
            buffer.push(1);
            put_field(&mut buffer, institution.as_bytes());
        }
        None => buffer.push(0),
    }
    put_field(&mut buffer, entry.outcome.as_str().as_bytes());
    put_field(&mut buffer, entry.details.as_bytes());
    buffer
}

pub fn record_hash(prev_hash: &str, seq: u64, entry: &AuditEntry) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_encoding(seq, entry));
    hex::encode(hasher.finalize())
}

/// Places `entry` after the record `(prev_seq, prev_hash)`; `None` for the first record.
pub fn seal(previous: Option<(u64, &str)>, entry: AuditEntry) -> AuditRecord {
    let (seq, prev_hash) = match previous {
        Some((seq, hash)) => (seq + 1, hash.to_owned()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let hash = record_hash(&prev_hash, seq, &entry);
    AuditRecord {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

/// The result of verifying a run of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records_checked: u64,
    /// The last good record: `(seq, hash)`.
    pub head: Option<(u64, String)>,
    /// The first record that does not fit the chain, and why.
    pub first_bad: Option<(u64, String)>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Checks records one at a time, in order, so a store can stream its whole log through
/// it without holding it in memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected: Option<(u64, String)>,
    report: VerifyReport,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::from_start()
    }
}

impl ChainVerifier {
    /// Verifies a log from its first record.
    pub fn from_start() -> Self {
        Self {
            expected: None,
            report: VerifyReport {
                records_checked: 0,
                head: None,
                first_bad: None,
            },
        }
    }

    /// Verifies a log from the record after `(seq, hash)`, which is trusted.
    pub fn after(seq: u64, hash: String) -> Self {
        let mut verifier = Self::from_start();
        verifier.expected = Some((seq, hash));
        verifier
    }

    /// Checks the next record. Returns false once the chain is broken; later records are
    /// then not examined.
    pub fn check(&mut self, record: &AuditRecord) -> bool {
        if self.report.first_bad.is_some() {
            return false;
        }
        let (want_seq, want_prev) = match &self.expected {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS_HASH),
        };
        let problem = if record.seq != want_seq {
            Some(format!(
                "expected record {want_seq} but found {}: records are missing or reordered",
                record.seq
            ))
        } else if record.prev_hash != want_prev {
            Some("prev_hash does not match the previous record's hash".to_owned())
        } else if record_hash(&record.prev_hash, record.seq, &record.entry) != record.hash {
            Some("content does not match its hash: the record was altered".to_owned())
        } else {
            None
        };
        self.report.records_checked += 1;
        match problem {
            Some(problem) => {
                self.report.first_bad = Some((want_seq.min(record.seq), problem));
                false
            }
            None => {
                self.expected = Some((record.seq, record.hash.clone()));
                self.report.head = self.expected.clone();
                true
            }
        }
    }

    pub fn finish(self) -> VerifyReport {
        self.report
    }
}

/// Verifies a whole log held in memory.
pub fn verify(records: &[AuditRecord]) -> VerifyReport {
    let mut verifier = ChainVerifier::from_start();
    for record in records {
        if !verifier.check(record) {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::*;
    use crate::audit::{Actor, Outcome};

    fn entry(n: u32, details: &str) -> AuditEntry {
        AuditEntry {
            at: OffsetDateTime::from_unix_timestamp(1_780_000_000 + i64::from(n)).unwrap(),
            actor: Actor {
                user: format!("user-{n}"),
                institution: "biru-county-hospital".into(),
                role: "clinic_staff".into(),
                certificate_fingerprint: "ab".repeat(32),
            },
            action: "directory.create_user".into(),
            target: format!("user:u{n}"),
            target_institution: (n % 2 == 0).then(|| "zju2".to_owned()),
            outcome: if n % 3 == 0 {
                Outcome::Denied
            } else {
                Outcome::Ok
            },
            details: details.to_owned(),
        }
    }

    fn chain(details: &[String]) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for (n, d) in details.iter().enumerate() {
            let previous = records.last().map(|r| (r.seq, r.hash.as_str()));
            let record = seal(previous, entry(n as u32, d));
            records.push(record);
        }
        records
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let records = chain(&["{}".into(), r#"{"a":1}"#.into(), "{}".into()]);
        let report = verify(&records);
        assert!(report.is_intact());
        assert_eq!(report.records_checked, 3);
        assert_eq!(report.head, Some((3, records[2].hash.clone())));
    }

    #[test]
    fn a_deleted_record_is_detected() {
        let mut records = chain(&["{}".into(), "{}".into(), "{}".into()]);
        records.remove(1);
        let report = verify(&records);
        assert_eq!(report.first_bad.map(|(seq, _)| seq), Some(2));
    }

    /// Applies `xor` to byte `position` of one field of a record, as someone editing
    /// the database would.
    fn tamper(record: &mut AuditRecord, field: usize, position: usize, xor: u8) {
        fn flip_text(text: &mut String, position: usize, xor: u8) {
            let mut bytes = std::mem::take(text).into_bytes();
            if bytes.is_empty() {
                bytes.push(xor);
            } else {
                let i = position % bytes.len();
                bytes[i] ^= xor;
            }
            *text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let entry = &mut record.entry;
        match field {
            0 => record.seq ^= u64::from(xor) << (8 * (position % 8)),
            1 => {
                let nanos = entry.at.unix_timestamp_nanos()
                    ^ (i128::from(xor) << (8 * (position % 4) + 10));
                entry.at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            }
            2 => flip_text(&mut entry.actor.user, position, xor),
            3 => flip_text(&mut entry.actor.institution, position, xor),
            4 => flip_text(&mut entry.actor.role, position, xor),
            5 => flip_text(&mut entry.actor.certificate_fingerprint, position, xor),
            6 => flip_text(&mut entry.action, position, xor),
            7 => flip_text(&mut entry.target, position, xor),
            8 => match &mut entry.target_institution {
                Some(text) => flip_text(text, position, xor),
                None => entry.target_institution = Some(String::new()),
            },
            9 => {
                entry.outcome = match entry.outcome {
                    Outcome::Ok => Outcome::Denied,
                    _ => Outcome::Ok,
                }
            }
            10 => flip_text(&mut entry.details, position, xor),
            11 => flip_text(&mut record.prev_hash, position, xor),
            _ => flip_text(&mut record.hash, position, xor),
        }
    }

    proptest! {
        #[test]
        fn any_single_byte_change_is_detected(
            details in proptest::collection::vec("\\PC{0,40}", 1..12),
            which in any::<prop::sample::Index>(),
            field in 0usize..13,
            position in any::<usize>(),
            xor in 1u8..=255,
        ) {
            let mut records = chain(&details);
            let victim = which.index(records.len());
            let before = records[victim].clone();
            tamper(&mut records[victim], field, position, xor);
            prop_assume!(records[victim] != before);
            let report = verify(&records);
            let (bad, _) = report.first_bad.expect("tampering must be detected");
            // The altered record or, when its seq was changed, the place it should be.
            if field == 0 {
                prop_assert!(bad <= before.seq, "reported {bad}, tampered {}", before.seq);
            } else {
                prop_assert_eq!(bad, before.seq);
            }
        }
    }
}
