//! The written opinion a consulting doctor gives. A draft may be rewritten; once
//! signed it never changes, and a correction is a new version that names the one it
//! supersedes. The content hash of a signed version is written to the audit chain.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::InvalidValue;
use super::consultation::{ClinicalText, ConsultationId};
use super::ids::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpinionContent {
    pub diagnosis_impression: ClinicalText,
    pub recommendations: ClinicalText,
    pub follow_up: ClinicalText,
}

impl OpinionContent {
    pub const MAX_SECTION: usize = 20_000;

    pub fn new(
        diagnosis_impression: &str,
        recommendations: &str,
        follow_up: &str,
    ) -> Result<Self, (&'static str, InvalidValue)> {
        Ok(Self {
            diagnosis_impression: ClinicalText::required(diagnosis_impression, Self::MAX_SECTION)
                .map_err(|e| ("diagnosis_impression", e))?,
            recommendations: ClinicalText::required(recommendations, Self::MAX_SECTION)
                .map_err(|e| ("recommendations", e))?,
            follow_up: ClinicalText::optional(follow_up, Self::MAX_SECTION)
                .map_err(|e| ("follow_up", e))?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpinionReport {
    pub consultation: ConsultationId,
    /// 1 for the first version.
    pub version: u32,
    pub content: OpinionContent,
    pub author: UserId,
    /// The signed version this one corrects.
    pub supersedes: Option<u32>,
    pub created_at: OffsetDateTime,
    pub signed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpinionError {
    #[error("version {0} is signed and cannot be changed; file a correction")]
    AlreadySigned(u32),
    #[error("{0}")]
    Precondition(String),
}

impl OpinionReport {
    /// The next draft, given the consultation's existing versions (sorted by version):
    /// an unsigned latest draft is replaced in place; after a signed version a new
    /// version supersedes it.
    pub fn draft(
        consultation: ConsultationId,
        existing: &[OpinionReport],
        content: OpinionContent,
        author: UserId,
        now: OffsetDateTime,
    ) -> OpinionReport {
        let latest = existing.last();
        let (version, supersedes) = match latest {
            None => (1, None),
            Some(draft) if draft.signed_at.is_none() => (draft.version, draft.supersedes),
            Some(signed) => (signed.version + 1, Some(signed.version)),
        };
        OpinionReport {
            consultation,
            version,
            content,
            author,
            supersedes,
            created_at: now,
            signed_at: None,
        }
    }

    /// Signs this version: from now on it is immutable.
    pub fn sign(&self, now: OffsetDateTime) -> Result<OpinionReport, OpinionError> {
        if self.signed_at.is_some() {
            return Err(OpinionError::AlreadySigned(self.version));
        }
        let mut signed = self.clone();
        signed.signed_at = Some(now);
        Ok(signed)
    }

    /// SHA-256 (lowercase hex) over a canonical encoding of everything the signature
    /// vouches for: whose opinion, on which consultation, which version, what it says.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u32).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"teleconsult-opinion-v1");
        field(self.consultation.as_str().as_bytes());
        field(&self.version.to_be_bytes());
        field(&self.supersedes.unwrap_or(0).to_be_bytes());
        field(self.author.as_str().as_bytes());
        field(self.content.diagnosis_impression.as_str().as_bytes());
        field(self.content.recommendations.as_str().as_bytes());
        field(self.content.follow_up.as_str().as_bytes());
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn content(text: &str) -> OpinionContent {
        OpinionContent::new(text, "low-salt diet; review in 2 weeks", "").unwrap()
    }

    fn report(existing: &[OpinionReport], text: &str) -> OpinionReport {
        OpinionReport::draft(
            ConsultationId::from_random([1; 10]),
            existing,
            content(text),
            UserId::parse("zju2-cardio-chen").unwrap(),
            datetime!(2026-12-01 03:00 UTC),
        )
    }

    #[test]
    fn drafts_are_replaced_until_signed_then_corrected() {
        let first = report(&[], "hypertension");
        assert_eq!((first.version, first.supersedes), (1, None));
        let rewritten = report(std::slice::from_ref(&first), "stage 2 hypertension");
        assert_eq!((rewritten.version, rewritten.supersedes), (1, None));
        let signed = rewritten.sign(datetime!(2026-12-01 04:00 UTC)).unwrap();
        assert_eq!(
            signed.sign(datetime!(2026-12-01 05:00 UTC)),
            Err(OpinionError::AlreadySigned(1))
        );
        let correction = report(&[signed], "stage 1 hypertension");
        assert_eq!((correction.version, correction.supersedes), (2, Some(1)));
    }

    #[test]
    fn the_hash_covers_the_content() {
        let a = report(&[], "hypertension");
        let b = report(&[], "hypertensiom");
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
        // Signing does not change what was said.
        let signed = a.sign(datetime!(2026-12-01 04:00 UTC)).unwrap();
        assert_eq!(signed.content_hash(), a.content_hash());
    }
}
