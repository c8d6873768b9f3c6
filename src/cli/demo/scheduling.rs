//! The paperwork of the demo, through SchedulingService as the people who do it:
//! availability, search, booking, acceptance, consent, and the signed opinion.

use anyhow::{Context, bail};
use teleconsult::domain::schedule::SHANGHAI;
use teleconsult::proto::v1 as pb;
use time::OffsetDateTime;

use super::super::local_time::{clock, display_window, from_timestamp, to_timestamp, weekday_name};
use super::cast::{self, Person};
use super::story::{Steps, get, refused};

/// The pseudonymous reference the clinic holds for its patient; never a name.
const PATIENT: &str = "BIRU-2026-0042";

/// Availability, search, booking, acceptance and consent: the consultation ready for
/// its session.
pub(super) async fn book_and_prepare(
    steps: &mut Steps,
    nurse: &mut Person,
    cardiologist: &mut Person,
) -> anyhow::Result<pb::Consultation> {
    // The session opens 15 minutes before the start, so a slot starting within the next
    // quarter of an hour can be joined now. Slots lie on the 5-minute grid of Asia/Shanghai
    // local time and must start in the future: the hours begin at the first grid point
    // two minutes or more from now.
    let now = OffsetDateTime::now_utc();
    let first = next_grid_point(now + time::Duration::minutes(2));
    let local = first.to_offset(SHANGHAI);
    let weekday = u32::from(local.weekday().number_from_monday());
    let start_minute = u32::from(local.hour()) * 60 + u32::from(local.minute());
    let end_minute = start_minute + 60;
    steps.step(&format!(
        "The cardiologist publishes availability: {} {}–{} (Asia/Shanghai)",
        weekday_name(weekday),
        clock(start_minute),
        clock(end_minute)
    ));
    steps.note("requests for these hours wait for the cardiologist to accept them");
    cardiologist
        .scheduling
        .set_availability(pb::SetAvailabilityRequest {
            availability: Some(pb::Availability {
                doctor_id: cardiologist.id.clone(),
                weekly: vec![pb::WeeklyInterval {
                    weekday,
                    start_minute,
                    end_minute,
                }],
                exceptions: vec![],
                auto_accept: false,
            }),
        })
        .await
        .map_err(refused("publishing availability"))?;

    steps.step(&format!(
        "The nurse searches {} slots at {} for the next hour",
        cast::SPECIALTY,
        cast::CONSULTING
    ));
    let slots = nurse
        .scheduling
        .search_slots(pb::SearchSlotsRequest {
            specialty: cast::SPECIALTY.to_owned(),
            institution_id: cast::CONSULTING.to_owned(),
            from: Some(to_timestamp(now)),
            to: Some(to_timestamp(now + time::Duration::minutes(75))),
            ..Default::default()
        })
        .await
        .map_err(refused("searching slots"))?
        .into_inner()
        .slots;
    for slot in &slots {
        steps.note(&format!(
            "free: {}  {}",
            display_window(slot.start.as_ref(), slot.end.as_ref()),
            slot.doctor_id
        ));
    }
    let latest_start = OffsetDateTime::now_utc() + time::Duration::minutes(14);
    let slot = slots
        .into_iter()
        .find(|slot| {
            slot.doctor_id == cardiologist.id
                && slot
                    .start
                    .as_ref()
                    .and_then(|start| from_timestamp(start).ok())
                    .is_some_and(|start| start <= latest_start)
        })
        .context("no slot of the cardiologist starts within the next 15 minutes")?;

    steps.step(&format!(
        "The nurse books the earliest slot for patient {PATIENT} (a pseudonymous reference)"
    ));
    steps.note(&format!(
        "{}: its session opens 15 minutes before the start",
        display_window(slot.start.as_ref(), slot.end.as_ref())
    ));
    let booked = nurse
        .scheduling
        .book_consultation(pb::BookConsultationRequest {
            slot: Some(slot),
            patient_ref: PATIENT.to_owned(),
            specialty: cast::SPECIALTY.to_owned(),
            reason: "Progressive exertional dyspnoea and ankle oedema over three months; \
                     suspected high-altitude pulmonary hypertension with right heart strain"
                .to_owned(),
            case_summary: "58-year-old yak herder, lifelong resident at 4,200 m. SpO2 79% at \
                           rest, Hb 21.8 g/dL, BP 148/92, HR 98. ECG: right axis deviation, \
                           P pulmonale. Echocardiography not available locally."
                .to_owned(),
        })
        .await
        .map_err(refused("booking the slot"))?
        .into_inner();
    steps.note(&format!("consultation {}", booked.id));
    steps.state(&booked);
    let id = booked.id.clone();

    steps.step("The cardiologist accepts the request");
    let accepted = cardiologist
        .scheduling
        .accept_consultation(pb::AcceptConsultationRequest { id: id.clone() })
        .await
        .map_err(refused("accepting the consultation"))?
        .into_inner();
    steps.state(&accepted);

    steps.step("The nurse records the patient's written informed consent");
    let consented = nurse
        .scheduling
        .record_consent(pb::RecordConsentRequest {
            id: id.clone(),
            consent: Some(pb::ConsentRecord {
                consenter: pb::consent_record::Consenter::Patient as i32,
                method: pb::consent_record::Method::Written as i32,
                ..Default::default()
            }),
        })
        .await
        .map_err(refused("recording consent"))?
        .into_inner();
    if consented.consent.is_none() {
        bail!("recording consent: the broker returned the consultation without consent");
    }
    steps.state(&consented);
    Ok(consented)
}

/// The cardiologist files the written opinion and signs it.
pub(super) async fn write_opinion(
    steps: &mut Steps,
    cardiologist: &mut Person,
    nurse: &mut Person,
    id: &str,
) -> anyhow::Result<()> {
    steps.step("The cardiologist files the written opinion");
    let draft = cardiologist
        .scheduling
        .file_opinion(pb::FileOpinionRequest {
            consultation_id: id.to_owned(),
            diagnosis_impression: "Probable high-altitude pulmonary hypertension with right \
                                   ventricular strain, secondary to chronic hypoxia and \
                                   excessive erythrocytosis (chronic mountain sickness, \
                                   Qinghai score 11)."
                .to_owned(),
            recommendations: "1. Long-term low-flow oxygen, at least 12 h a day, SpO2 target \
                              above 88%. 2. Isovolaemic phlebotomy if Hb stays above \
                              21 g/dL. 3. Furosemide 20 mg daily for the oedema; watch \
                              potassium. 4. Transthoracic echocardiography at Nagqu People's \
                              Hospital: estimate PASP and RV function. 5. If PASP > 50 mmHg, \
                              consider sildenafil 20 mg three times a day after review. \
                              6. Descent to lower altitude if symptoms progress."
                .to_owned(),
            follow_up: "Teleconsult review in 4 weeks with the echocardiogram, Hb and SpO2 \
                        log; sooner if syncope, chest pain or worsening breathlessness."
                .to_owned(),
        })
        .await
        .map_err(refused("filing the opinion"))?
        .into_inner();
    steps.note(&format!("opinion version {} (draft)", draft.version));
    let impression: String = draft.diagnosis_impression.chars().take(72).collect();
    steps.note(&format!("impression: {impression}…"));
    steps.state(&get(nurse, id).await?);

    steps.step("The cardiologist signs it");
    let signed = cardiologist
        .scheduling
        .sign_opinion(pb::SignOpinionRequest {
            consultation_id: id.to_owned(),
            version: draft.version,
        })
        .await
        .map_err(refused("signing the opinion"))?
        .into_inner();
    steps.note(&format!(
        "signed version {}, content SHA-256 {} (sealed in audit record {})",
        signed.version,
        signed.content_hash,
        signed.seal.as_ref().map_or(0, |seal| seal.seq)
    ));
    steps.state(&get(nurse, id).await?);
    Ok(())
}

/// The first instant on the 5-minute grid at or after `at`, whole minutes.
fn next_grid_point(at: OffsetDateTime) -> OffsetDateTime {
    let step = 5 * 60;
    let seconds = at.unix_timestamp();
    let rounded = seconds + (step - seconds.rem_euclid(step)) % step;
    OffsetDateTime::from_unix_timestamp(rounded).expect("a time near now")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::next_grid_point;

    #[test]
    fn slots_start_on_the_five_minute_grid() {
        assert_eq!(
            next_grid_point(datetime!(2026-03-02 06:31:10 UTC)),
            datetime!(2026-03-02 06:35 UTC)
        );
        assert_eq!(
            next_grid_point(datetime!(2026-03-02 06:35 UTC)),
            datetime!(2026-03-02 06:35 UTC)
        );
        assert_eq!(
            next_grid_point(datetime!(2026-03-02 15:58 UTC)),
            datetime!(2026-03-02 16:00 UTC)
        );
    }
}
