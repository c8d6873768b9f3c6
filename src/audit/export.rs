//! Audit records as other systems read them: JSON Lines, and FHIR R4 `AuditEvent`
//! resources following the IHE Basic Audit Log Patterns (BALP) where they fit.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::{AuditRecord, Outcome};

/// A record as one JSON object (one line of a JSON Lines export). Field names follow
/// the `AuditRecord` protobuf message; `details` stays the exact text that was hashed,
/// so that a recipient can recompute every record's hash.
pub fn json_line(record: &AuditRecord) -> Value {
    let entry = &record.entry;
    json!({
        "seq": record.seq,
        "at": rfc3339(record),
        "actor_user_id": entry.actor.user,
        "actor_institution_id": entry.actor.institution,
        "actor_role": entry.actor.role,
        "actor_certificate_fingerprint": entry.actor.certificate_fingerprint,
        "action": entry.action,
        "target": entry.target,
        "target_institution_id": entry.target_institution,
        "outcome": entry.outcome.as_str(),
        "details": entry.details,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    })
}

fn rfc3339(record: &AuditRecord) -> String {
    record
        .entry
        .at
        .format(&Rfc3339)
        .unwrap_or_else(|_| record.entry.at.to_string())
}

/// FHIR `AuditEvent.action`: C, R, U, D or E from the verb of the action's name.
fn fhir_action(action: &str) -> &'static str {
    let verb = action.rsplit('.').next().unwrap_or(action);
    match verb {
        v if v.starts_with("create")
            || v.starts_with("book")
            || v.starts_with("request")
            || v == "file_opinion" =>
        {
            "C"
        }
        v if v.starts_with("get")
            || v.starts_with("list")
            || v.starts_with("search")
            || v.starts_with("who_am_i")
            || v == "timeline"
            || v == "query"
            || v == "export"
            || v == "watch" =>
        {
            "R"
        }
        v if v.starts_with("delete") => "D",
        v if v.starts_with("update")
            || v.starts_with("set")
            || v.starts_with("accept")
            || v.starts_with("decline")
            || v.starts_with("cancel")
            || v.starts_with("reschedule")
            || v.starts_with("record")
            || v.starts_with("invite")
            || v.starts_with("sign")
            || v == "import"
            || v == "escalate"
            || v == "no_show" =>
        {
            "U"
        }
        _ => "E",
    }
}

/// FHIR `AuditEvent.outcome`: 0 success, 4 minor failure (refused or invalid request),
/// 8 serious failure (a server error).
fn fhir_outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "0",
        Outcome::Denied | Outcome::Invalid => "4",
        Outcome::Error => "8",
    }
}

/// The event type: BALP uses DICOM's "Patient Record" for access to patient-related
/// data (a consultation or opinion), "Security Alert" for refused authentication and
/// "Application Activity" for the rest; RESTful interactions get the HL7 `rest` type.
fn fhir_type(record: &AuditRecord) -> Value {
    let entry = &record.entry;
    let dicom = |code: &str, display: &str| json!({ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": code, "display": display });
    if entry.action == "tls.handshake" || entry.details.contains("\"stage\":\"authenticate\"") {
        dicom("110113", "Security Alert")
    } else if entry.target.starts_with("consultation:") {
        dicom("110110", "Patient Record")
    } else if entry.action.starts_with("system") || entry.actor.role == "system" {
        dicom("110100", "Application Activity")
    } else {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation" })
    }
}

/// The IHE BALP profile for the kind of event.
fn balp_profile(action: &str) -> Value {
    let name = match action {
        "C" => "Create",
        "R" => "Read",
        "U" => "Update",
        "D" => "Delete",
        // BALP has no profile for other operations.
        _ => return json!([]),
    };
    json!([format!(
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.{name}"
    )])
}

/// A record as a FHIR R4 `AuditEvent`.
pub fn fhir_audit_event(record: &AuditRecord, observer: &str) -> Value {
    let entry = &record.entry;
    let details: Value = serde_json::from_str(&entry.details).unwrap_or(Value::Null);
    let mut agent = json!({
        "type": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
            "code": "humanuser",
            "display": "human user"
        }]},
        "who": {
            "identifier": { "system": "urn:teleconsult:user", "value": entry.actor.user },
            "display": entry.actor.user,
        },
        "requestor": true,
        "role": [{ "coding": [{ "system": "urn:teleconsult:role", "code": entry.actor.role }] }],
    });
    if entry.actor.role == "system" || entry.actor.role == "operator" {
        agent["type"] = json!({ "coding": [{
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110150",
            "display": "Application"
        }]});
    }
    if !entry.actor.institution.is_empty() {
        agent["who"]["extension"] = json!([{
            "url": "urn:teleconsult:institution",
            "valueString": entry.actor.institution,
        }]);
    }
    if !entry.actor.certificate_fingerprint.is_empty() {
        agent["altId"] = json!(format!("sha256:{}", entry.actor.certificate_fingerprint));
    }
    // A browser's sign-in records where it came from (network type 2: an IP address).
    if let Some(address) = details.get("address").and_then(Value::as_str) {
        agent["network"] = json!({ "address": address, "type": "2" });
    }
    let (entity_system, entity_value) = match entry.target.split_once(':') {
        Some((kind, id)) => (format!("urn:teleconsult:{kind}"), id.to_owned()),
        None => ("urn:teleconsult:target".to_owned(), entry.target.clone()),
    };
    let mut entity_details = vec![
        json!({ "type": "details", "valueString": entry.details }),
        json!({ "type": "record-hash", "valueString": record.hash }),
        json!({ "type": "prev-hash", "valueString": record.prev_hash }),
    ];
    if let Some(hash) = details.get("content_hash").and_then(Value::as_str) {
        entity_details.push(json!({ "type": "opinion-content-hash", "valueString": hash }));
    }
    let entity_type = if entry.target.starts_with("consultation:") {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" })
    } else if entry.target.starts_with("user:") {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" })
    } else {
        json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "4", "display": "Other" })
    };
    json!({
        "resourceType": "AuditEvent",
        "id": format!("teleconsult-{}", record.seq),
        "meta": { "profile": balp_profile(fhir_action(&entry.action)) },
        "type": fhir_type(record),
        "subtype": [{ "system": "urn:teleconsult:action", "code": entry.action }],
        "action": fhir_action(&entry.action),
        "recorded": rfc3339(record),
        "outcome": fhir_outcome(entry.outcome),
        "outcomeDesc": details.get("reason").and_then(Value::as_str).unwrap_or(entry.outcome.as_str()),
        "agent": [agent],
        "source": {
            "site": observer,
            "observer": { "display": observer },
            "type": [{
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server"
            }]
        },
        "entity": [{
            "what": { "identifier": { "system": entity_system, "value": entity_value } },
            "type": entity_type,
            "detail": entity_details,
        }],
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::audit::{Actor, AuditEntry, chain};

    fn record(action: &str, target: &str, outcome: Outcome) -> AuditRecord {
        let mut entry = AuditEntry::new(
            Actor {
                user: "biru-nurse-dawa".into(),
                institution: "biru-county-hospital".into(),
                role: "clinic_staff".into(),
                certificate_fingerprint: "ab".repeat(32),
            },
            action,
            target,
            outcome,
        )
        .details(json!({ "reason": "x" }));
        entry.at = datetime!(2026-12-01 01:00 UTC);
        chain::seal(None, entry)
    }

    #[test]
    fn audit_events_have_the_required_r4_elements() {
        let event = fhir_audit_event(
            &record(
                "scheduling.book_consultation",
                "consultation:c-00",
                Outcome::Ok,
            ),
            "teleconsult",
        );
        assert_eq!(event["resourceType"], "AuditEvent");
        assert_eq!(
            event["type"]["system"],
            "http://dicom.nema.org/resources/ontology/DCM"
        );
        assert_eq!(event["type"]["code"], "110110");
        assert_eq!(event["action"], "C");
        assert_eq!(event["outcome"], "0");
        assert_eq!(event["recorded"], "2026-12-01T01:00:00Z");
        assert_eq!(event["agent"][0]["requestor"], true);
        assert!(event["source"]["observer"].is_object());
        assert_eq!(event["entity"][0]["what"]["identifier"]["value"], "c-00");
    }

    #[test]
    fn refusals_are_minor_failures() {
        let event = fhir_audit_event(
            &record("directory.list_users", "directory", Outcome::Denied),
            "t",
        );
        assert_eq!(event["outcome"], "4");
        assert_eq!(event["action"], "R");
        assert_eq!(event["outcomeDesc"], "x");
        assert!(event["agent"][0].get("network").is_none());
    }

    #[test]
    fn a_sign_in_names_the_address_it_came_from() {
        let mut signed_in = record("account.sign_in", "user:biru-nurse-dawa", Outcome::Ok);
        signed_in.entry = signed_in
            .entry
            .details(json!({ "address": "10.20.0.7", "session": "0123456789abcdef" }));
        let event = fhir_audit_event(&signed_in, "t");
        assert_eq!(
            event["agent"][0]["network"],
            json!({ "address": "10.20.0.7", "type": "2" })
        );
    }
}
