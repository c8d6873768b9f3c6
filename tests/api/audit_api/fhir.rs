//! `Export` as FHIR R4 AuditEvent NDJSON: each line one resource with the elements R4
//! requires and no others, event types from DICOM or HL7's audit event types, and
//! codes for action and outcome from R4's value sets; one resource per record.

use std::collections::BTreeSet;

use serde_json::Value;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::export_audit_request::Format;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::export::export;
use super::{audit_as, history};
use crate::helpers::TestApp;
use crate::scheduling::{CHEN, PLATFORM_ADMIN, completed, local, monday_ahead};

on_both_backends!(fhir_events_have_the_audit_event_structure);

const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const HL7_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";

/// The elements R4 defines for AuditEvent and its parts: anything else is not valid.
const AUDIT_EVENT: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "type",
    "subtype",
    "action",
    "period",
    "recorded",
    "outcome",
    "outcomeDesc",
    "purposeOfEvent",
    "agent",
    "source",
    "entity",
];
const AGENT: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "type",
    "role",
    "who",
    "altId",
    "name",
    "requestor",
    "location",
    "policy",
    "media",
    "network",
    "purposeOfUse",
];
const SOURCE: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "site",
    "observer",
    "type",
];
const ENTITY: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "what",
    "type",
    "role",
    "lifecycle",
    "securityLabel",
    "name",
    "description",
    "query",
    "detail",
];
const CODING: &[&str] = &[
    "id",
    "extension",
    "system",
    "version",
    "code",
    "display",
    "userSelected",
];
const REFERENCE: &[&str] = &[
    "id",
    "extension",
    "reference",
    "type",
    "identifier",
    "display",
];

#[track_caller]
fn only_elements(value: &Value, allowed: &[&str], path: &str) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{path} is an object: {value}"));
    for key in object.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{path}.{key} is not an R4 element"
        );
    }
}

/// A FHIR `instant`: a full date and time to the second, with a zone.
#[track_caller]
fn assert_instant(text: &str) {
    let parsed = OffsetDateTime::parse(text, &Rfc3339);
    assert!(parsed.is_ok(), "recorded {text:?} is an instant");
    let time = &text[11..];
    assert!(
        time.len() >= 8 && (text.ends_with('Z') || text[19..].contains(['+', '-'])),
        "recorded {text:?} has seconds and a zone"
    );
}

#[track_caller]
fn assert_coding(coding: &Value, path: &str) {
    only_elements(coding, CODING, path);
    assert!(
        coding["system"].as_str().is_some_and(|s| !s.is_empty()),
        "{path}.system: {coding}"
    );
    assert!(
        coding["code"].as_str().is_some_and(|s| !s.is_empty()),
        "{path}.code: {coding}"
    );
}

#[track_caller]
fn assert_codeable_concept(concept: &Value, path: &str) {
    only_elements(concept, &["id", "extension", "coding", "text"], path);
    for (i, coding) in concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_coding(coding, &format!("{path}.coding[{i}]"));
    }
}

/// One AuditEvent against R4's structure and the code systems BALP uses.
#[track_caller]
fn assert_audit_event(event: &Value) {
    only_elements(event, AUDIT_EVENT, "AuditEvent");
    assert_eq!(event["resourceType"], "AuditEvent");
    assert!(event["id"].as_str().is_some_and(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    }));

    // type: a Coding (1..1 in R4) from DICOM or HL7's audit event types.
    let event_type = &event["type"];
    assert_coding(event_type, "type");
    match event_type["system"].as_str().unwrap() {
        DICOM => assert!(
            ["110100", "110110", "110112", "110113", "110114"]
                .contains(&event_type["code"].as_str().unwrap()),
            "a DICOM audit event id: {event_type}"
        ),
        HL7_EVENT_TYPE => assert!(
            [
                "rest",
                "access",
                "activity",
                "anonymize",
                "deidentify",
                "export",
                "import"
            ]
            .contains(&event_type["code"].as_str().unwrap()),
            "an HL7 audit event type: {event_type}"
        ),
        other => panic!("type from an unexpected system {other}"),
    }
    for (i, subtype) in event["subtype"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_coding(subtype, &format!("subtype[{i}]"));
    }
    let action = event["action"].as_str().expect("action is a code");
    assert!(
        ["C", "R", "U", "D", "E"].contains(&action),
        "action {action}"
    );
    assert_instant(event["recorded"].as_str().expect("recorded is present"));
    let outcome = event["outcome"].as_str().expect("outcome is a code");
    assert!(
        ["0", "4", "8", "12"].contains(&outcome),
        "outcome {outcome}"
    );
    if !event["outcomeDesc"].is_null() {
        assert!(event["outcomeDesc"].is_string());
    }

    // agent: 1..*, each with requestor (a boolean, 1..1) and who.
    let agents = event["agent"].as_array().expect("agent is a list");
    assert!(!agents.is_empty(), "at least one agent");
    for (i, agent) in agents.iter().enumerate() {
        let path = format!("agent[{i}]");
        only_elements(agent, AGENT, &path);
        assert!(agent["requestor"].is_boolean(), "{path}.requestor: {agent}");
        only_elements(&agent["who"], REFERENCE, &format!("{path}.who"));
        if !agent["type"].is_null() {
            assert_codeable_concept(&agent["type"], &format!("{path}.type"));
        }
        for (j, role) in agent["role"].as_array().into_iter().flatten().enumerate() {
            assert_codeable_concept(role, &format!("{path}.role[{j}]"));
        }
        for extension in agent["who"]["extension"].as_array().into_iter().flatten() {
            assert!(extension["url"].is_string(), "extensions have a url");
        }
    }

    // source: 1..1 with observer (a Reference, 1..1).
    let source = &event["source"];
    only_elements(source, SOURCE, "source");
    only_elements(&source["observer"], REFERENCE, "source.observer");
    assert!(
        source["observer"]
            .as_object()
            .is_some_and(|o| !o.is_empty()),
        "source.observer says who observed"
    );
    if !source["site"].is_null() {
        assert!(source["site"].is_string(), "source.site is a string");
    }
    for (i, kind) in source["type"].as_array().into_iter().flatten().enumerate() {
        assert_coding(kind, &format!("source.type[{i}]"));
    }

    for (i, entity) in event["entity"].as_array().into_iter().flatten().enumerate() {
        let path = format!("entity[{i}]");
        only_elements(entity, ENTITY, &path);
        only_elements(&entity["what"], REFERENCE, &format!("{path}.what"));
        if !entity["type"].is_null() {
            assert_coding(&entity["type"], &format!("{path}.type"));
        }
        for detail in entity["detail"].as_array().into_iter().flatten() {
            only_elements(
                detail,
                &[
                    "id",
                    "extension",
                    "type",
                    "valueString",
                    "valueBase64Binary",
                ],
                &format!("{path}.detail"),
            );
            assert!(detail["type"].is_string(), "{path}.detail.type");
        }
    }
}

async fn fhir_events_have_the_audit_event_structure(app: TestApp) {
    history(&app).await;
    let done = completed(&app, local(monday_ahead(1), 9, 0)).await;
    let mut admin = audit_as(&app, PLATFORM_ADMIN);
    let fhir = export(
        &mut admin,
        pb::QueryAuditRequest::default(),
        Format::FhirNdjson,
    )
    .await;
    let jsonl = export(&mut admin, pb::QueryAuditRequest::default(), Format::Jsonl).await;
    let records: Vec<&Value> = jsonl
        .lines
        .iter()
        .filter(|r| r["seq"].as_u64() <= Some(fhir.head_seq))
        .collect();
    assert_eq!(fhir.lines.len(), records.len(), "one resource per record");
    let mut ids = BTreeSet::new();
    for (event, record) in fhir.lines.iter().zip(&records) {
        assert_audit_event(event);
        assert!(
            ids.insert(event["id"].as_str().unwrap().to_owned()),
            "ids are unique"
        );
        let recorded = OffsetDateTime::parse(event["recorded"].as_str().unwrap(), &Rfc3339);
        let at = OffsetDateTime::parse(record["at"].as_str().unwrap(), &Rfc3339);
        assert_eq!(recorded.unwrap(), at.unwrap(), "{event}");
        let expected_outcome = match record["outcome"].as_str().unwrap() {
            "ok" => "0",
            "error" => "8",
            _ => "4",
        };
        assert_eq!(event["outcome"], expected_outcome, "{event}");
    }

    // What the consultation's records say in FHIR terms: patient-record events on a
    // system object, the booking a create, the signature carrying the content hash.
    let target = done.id.as_str();
    let about: Vec<&Value> = fhir
        .lines
        .iter()
        .filter(|e| e["entity"][0]["what"]["identifier"]["value"] == target)
        .collect();
    assert!(!about.is_empty());
    for event in &about {
        assert_eq!(event["type"]["system"], DICOM);
        assert_eq!(event["type"]["code"], "110110", "Patient Record: {event}");
    }
    let action_of = |name: &str| {
        about
            .iter()
            .find(|e| e["subtype"][0]["code"] == name)
            .unwrap_or_else(|| panic!("{name} in the export"))
    };
    assert_eq!(action_of("scheduling.book_consultation")["action"], "C");
    let signed = action_of("scheduling.sign_opinion");
    let opinion = app
        .scheduling_as(CHEN)
        .get_opinion(pb::GetOpinionRequest {
            consultation_id: done.id.clone(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let details = signed["entity"][0]["detail"].as_array().unwrap();
    assert!(
        details
            .iter()
            .any(|d| d["valueString"] == opinion.content_hash.as_str()),
        "{signed}"
    );
    let refusal = fhir
        .lines
        .iter()
        .find(|e| e["subtype"][0]["code"] == "directory.list_users")
        .expect("the clinic's refused directory read");
    assert_eq!(refusal["outcome"], "4");
    assert_eq!(refusal["agent"][0]["requestor"], true);
    app.stop().await;
}
