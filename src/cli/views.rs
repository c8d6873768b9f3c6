//! The response messages as JSON for scripts: the proto's field names, enums by
//! their proto names (`CONSULTATION_STATE_SCHEDULED`), times in RFC 3339 UTC, every
//! field present. And the short names the text output uses.

use serde_json::{Value, json};
use teleconsult::proto::v1 as pb;

use super::local_time::rfc3339;

/// An enum value's proto name, or its number when this client does not know it.
fn enum_name<E: TryFrom<i32>>(value: i32, name: impl Fn(&E) -> &'static str) -> Value {
    match E::try_from(value) {
        Ok(known) => Value::from(name(&known)),
        Err(_) => Value::from(value),
    }
}

/// `SCHEDULED` for CONSULTATION_STATE_SCHEDULED, for tables.
pub fn short<E: TryFrom<i32>>(
    value: i32,
    prefix: &str,
    name: impl Fn(&E) -> &'static str,
) -> String {
    match E::try_from(value) {
        Ok(known) => {
            let full = name(&known);
            full.strip_prefix(prefix).unwrap_or(full).to_owned()
        }
        Err(_) => value.to_string(),
    }
}

pub fn state(value: i32) -> String {
    short(
        value,
        "CONSULTATION_STATE_",
        pb::ConsultationState::as_str_name,
    )
}

pub fn urgency(value: i32) -> String {
    short(value, "URGENCY_", pb::Urgency::as_str_name)
}

pub fn language(value: i32) -> String {
    short(value, "LANGUAGE_", pb::Language::as_str_name).to_ascii_lowercase()
}

pub fn role(value: i32) -> String {
    short(value, "ROLE_", pb::Role::as_str_name).to_ascii_lowercase()
}

pub fn principal(p: &pb::Principal) -> Value {
    json!({
        "user_id": p.user_id,
        "institution_id": p.institution_id,
        "role": enum_name(p.role, pb::Role::as_str_name),
        "certificate_fingerprint": p.certificate_fingerprint,
    })
}

pub fn user(u: &pb::User) -> Value {
    json!({
        "id": u.id,
        "institution_id": u.institution_id,
        "role": enum_name(u.role, pb::Role::as_str_name),
        "display_name_zh": u.display_name_zh,
        "display_name_en": u.display_name_en,
        "active": u.active,
    })
}

pub fn institution(i: &pb::Institution) -> Value {
    json!({
        "id": i.id,
        "kind": enum_name(i.kind, pb::InstitutionKind::as_str_name),
        "name_zh": i.name_zh,
        "name_en": i.name_en,
        "region": i.region,
    })
}

pub fn who_am_i(w: &pb::WhoAmIResponse) -> Value {
    json!({
        "principal": w.principal.as_ref().map(principal),
        "user": w.user.as_ref().map(user),
        "institution": w.institution.as_ref().map(institution),
    })
}

pub fn specialist(s: &pb::Specialist) -> Value {
    json!({
        "user_id": s.user_id,
        "institution_id": s.institution_id,
        "display_name_zh": s.display_name_zh,
        "display_name_en": s.display_name_en,
        "specialties": s.specialties,
        "title": s.title,
        "languages": s.languages.iter().map(|&l| enum_name(l, pb::Language::as_str_name)).collect::<Vec<_>>(),
        "on_call": s.on_call,
        "slot_minutes": s.slot_minutes,
    })
}

pub fn slot(s: &pb::Slot) -> Value {
    json!({
        "doctor_id": s.doctor_id,
        "institution_id": s.institution_id,
        "start": rfc3339(s.start.as_ref()),
        "end": rfc3339(s.end.as_ref()),
    })
}

pub fn availability(a: &pb::Availability) -> Value {
    json!({
        "doctor_id": a.doctor_id,
        "weekly": a.weekly.iter().map(|w| json!({
            "weekday": w.weekday,
            "start_minute": w.start_minute,
            "end_minute": w.end_minute,
        })).collect::<Vec<_>>(),
        "exceptions": a.exceptions.iter().map(|e| json!({
            "start": rfc3339(e.start.as_ref()),
            "end": rfc3339(e.end.as_ref()),
            "reason": e.reason,
        })).collect::<Vec<_>>(),
        "auto_accept": a.auto_accept,
    })
}

pub fn consent(c: &pb::ConsentRecord) -> Value {
    use pb::consent_record::{Consenter, Method};
    json!({
        "consenter": enum_name(c.consenter, Consenter::as_str_name),
        "method": enum_name(c.method, Method::as_str_name),
        "recorded_by": c.recorded_by,
        "recorded_at": rfc3339(c.recorded_at.as_ref()),
        "witness": c.witness,
    })
}

pub fn consultation(c: &pb::Consultation) -> Value {
    json!({
        "id": c.id,
        "state": enum_name(c.state, pb::ConsultationState::as_str_name),
        "urgency": enum_name(c.urgency, pb::Urgency::as_str_name),
        "inviting_institution_id": c.inviting_institution_id,
        "requested_by": c.requested_by,
        "patient_ref": c.patient_ref,
        "specialty": c.specialty,
        "reason": c.reason,
        "case_summary": c.case_summary,
        "doctor_id": c.doctor_id,
        "consulting_institution_id": c.consulting_institution_id,
        "start": rfc3339(c.start.as_ref()),
        "end": rfc3339(c.end.as_ref()),
        "consent": c.consent.as_ref().map(consent),
        "interpreter_ids": c.interpreter_ids,
        "additional_doctor_ids": c.additional_doctor_ids,
        "state_reason": c.state_reason,
        "created_at": rfc3339(c.created_at.as_ref()),
        "accepted_at": rfc3339(c.accepted_at.as_ref()),
        "escalated_at": rfc3339(c.escalated_at.as_ref()),
        "version": c.version,
        "seconds_to_accept": c.seconds_to_accept,
    })
}

pub fn event(e: &pb::ConsultationEvent) -> Value {
    json!({
        "kind": enum_name(e.kind, pb::consultation_event::Kind::as_str_name),
        "consultation": e.consultation.as_ref().map(consultation),
        "at": rfc3339(e.at.as_ref()),
    })
}

pub fn audit_record(r: &pb::AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "at": rfc3339(r.at.as_ref()),
        "actor_user_id": r.actor_user_id,
        "actor_institution_id": r.actor_institution_id,
        "actor_role": r.actor_role,
        "actor_certificate_fingerprint": r.actor_certificate_fingerprint,
        "action": r.action,
        "target": r.target,
        "target_institution_id": r.target_institution_id,
        "outcome": enum_name(r.outcome, pb::Outcome::as_str_name),
        "details": r.details,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

pub fn opinion(o: &pb::OpinionReport) -> Value {
    json!({
        "consultation_id": o.consultation_id,
        "version": o.version,
        "diagnosis_impression": o.diagnosis_impression,
        "recommendations": o.recommendations,
        "follow_up": o.follow_up,
        "author_id": o.author_id,
        "signed": o.signed,
        "signed_at": rfc3339(o.signed_at.as_ref()),
        "content_hash": o.content_hash,
        "supersedes_version": o.supersedes_version,
        "created_at": rfc3339(o.created_at.as_ref()),
        "seal": o.seal.as_ref().map(audit_record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_have_proto_and_short_names() {
        let scheduled = pb::ConsultationState::Scheduled as i32;
        assert_eq!(
            enum_name(scheduled, pb::ConsultationState::as_str_name),
            "CONSULTATION_STATE_SCHEDULED"
        );
        assert_eq!(state(scheduled), "SCHEDULED");
        assert_eq!(state(99), "99");
        assert_eq!(language(pb::Language::Tibetan as i32), "tibetan");
    }
}
