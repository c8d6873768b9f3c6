//! The waiting room: the clinic side joins early and the assigned doctor is told.

use teleconsult::proto::v1::WatchRequest;
use teleconsult::proto::v1::consultation_event::Kind;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_doctor_is_told_the_patient_is_waiting() {
    let app = TestApp::spawn().await;
    let consultation = consultation(&app, time::Duration::minutes(10), true).await;
    let id = consultation.id.to_string();
    let mut doctor_watch = app
        .scheduling_as(DOCTOR)
        .watch(WatchRequest {})
        .await
        .unwrap()
        .into_inner();
    // A doctor of the same hospital who is not assigned to this consultation.
    let mut colleague_watch = app
        .scheduling_as("zju2-eye-zhou")
        .watch(WatchRequest {})
        .await
        .unwrap()
        .into_inner();

    let _nurse = join(&app, NURSE, &id).await;

    let waiting = tokio::time::timeout(PATIENCE, async {
        let mut kinds = Vec::new();
        while let Some(event) = doctor_watch.message().await.unwrap() {
            let about = event.consultation.as_ref().map(|c| c.id.as_str());
            if about != Some(id.as_str()) {
                continue;
            }
            kinds.push(event.kind());
            if event.kind() == Kind::PatientWaiting {
                return (kinds, event);
            }
        }
        panic!("the watch ended before the patient was waiting: {kinds:?}");
    })
    .await
    .expect("no patient-waiting event within the time limit");
    let (kinds, event) = waiting;
    // First the consultation went into session, then the doctor was told.
    assert_eq!(kinds, [Kind::Changed, Kind::PatientWaiting]);
    let about = event.consultation.unwrap();
    assert_eq!(
        about.state(),
        teleconsult::proto::v1::ConsultationState::InSession
    );

    // The waiting patient is not shown to doctors outside the consultation.
    let leaked = tokio::time::timeout(Duration::from_millis(300), colleague_watch.message()).await;
    assert!(leaked.is_err(), "another doctor saw {leaked:?}");
}
