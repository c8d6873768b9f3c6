//! Slot claims: a doctor's time is booked once, whatever the concurrency, and a claim
//! follows its consultation when it is cancelled or moved.

use teleconsult::domain::consultation::Event;
use time::Duration;

use super::*;
use crate::backends::Backend;
use crate::fixtures::*;

pub async fn a_slot_is_booked_once(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let first = booking(1, CHEN, slot(24, 30));
    create(store, &first).await.unwrap();
    let log = audit_log(store).await;

    // The same slot, and one of another length overlapping it.
    assert_slot_taken(
        create(store, &booking(2, CHEN, slot(24, 30))).await,
        CHEN,
        slot(24, 30),
    );
    let overlapping = window(NOW + Duration::hours(24) + Duration::minutes(15), 45);
    assert_slot_taken(
        create(store, &booking(3, CHEN, overlapping)).await,
        CHEN,
        overlapping,
    );
    let earlier = window(NOW + Duration::hours(24) - Duration::minutes(25), 30);
    assert_slot_taken(
        create(store, &booking(4, CHEN, earlier)).await,
        CHEN,
        earlier,
    );
    // Nothing of the refused bookings was written.
    for n in 2..=4 {
        assert_eq!(store.consultation(&consultation_id(n)).await.unwrap(), None);
    }
    assert_eq!(audit_log(store).await, log);
    assert_eq!(claims(store, &[CHEN]).await, quanta(CHEN, slot(24, 30)));

    // Another doctor at the same time, and the next slot, are free.
    create(store, &booking(5, WANG, slot(24, 30)))
        .await
        .unwrap();
    let next = window(slot(24, 30).end(), 30);
    create(store, &booking(6, CHEN, next)).await.unwrap();
    assert_eq!(
        claims(store, &[CHEN, WANG]).await,
        [
            quanta(CHEN, slot(24, 30)),
            quanta(CHEN, next),
            quanta(WANG, slot(24, 30))
        ]
        .concat()
    );
}

pub async fn concurrent_bookings_of_one_slot_have_one_winner(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    let before = audit_log(store.as_ref()).await.len();
    const CLINICS: u32 = 100;

    let tasks: Vec<_> = (0..CLINICS)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(
                async move { create(store.as_ref(), &booking(n, CHEN, slot(24, 30))).await },
            )
        })
        .collect();
    let mut booked = Vec::new();
    for (n, task) in (0..CLINICS).zip(tasks) {
        match task.await.unwrap() {
            Ok(()) => booked.push(n),
            result => assert_slot_taken(result, CHEN, slot(24, 30)),
        }
    }

    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(
        claims(store.as_ref(), &[CHEN]).await,
        quanta(CHEN, slot(24, 30))
    );
    for n in 0..CLINICS {
        let found = store.consultation(&consultation_id(n)).await.unwrap();
        assert_eq!(found.is_some(), booked == [n], "consultation {n}");
    }
    assert_eq!(audit_log(store.as_ref()).await.len(), before + 1);
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

pub async fn cancelling_releases_the_slot(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let booked = booking(1, CHEN, slot(24, 30));
    create(store, &booked).await.unwrap();

    let cancelled = change(
        store,
        &booked,
        Event::Cancel {
            reason: "patient transferred to Lhasa".into(),
            at: NOW,
        },
    )
    .await;
    assert_eq!(stored(store, &booked).await, Some(cancelled));
    assert_eq!(claims(store, &[CHEN]).await, []);

    let rebooked = booking(2, CHEN, slot(24, 30));
    create(store, &rebooked).await.unwrap();
    assert_eq!(claims(store, &[CHEN]).await, quanta(CHEN, slot(24, 30)));
}

pub async fn rescheduling_moves_the_claim(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let moving = booking(1, CHEN, slot(24, 30));
    let staying = booking(2, CHEN, slot(48, 30));
    create(store, &moving).await.unwrap();
    create(store, &staying).await.unwrap();

    let moved = change(
        store,
        &moving,
        Event::Reschedule {
            window: slot(30, 30),
            at: NOW,
        },
    )
    .await;
    assert_eq!(stored(store, &moving).await, Some(moved.clone()));
    assert_eq!(
        claims(store, &[CHEN]).await,
        [quanta(CHEN, slot(30, 30)), quanta(CHEN, slot(48, 30))].concat()
    );
    // The old slot is free again, the new one taken.
    assert_slot_taken(
        create(store, &booking(3, CHEN, slot(30, 30))).await,
        CHEN,
        slot(30, 30),
    );
    create(store, &booking(4, CHEN, slot(24, 30)))
        .await
        .unwrap();

    // Onto a taken slot: refused, and nothing changes.
    let log = audit_log(store).await;
    let clash = moved
        .apply(Event::Reschedule {
            window: window(slot(48, 30).start() + Duration::minutes(10), 30),
            at: NOW,
        })
        .unwrap();
    assert_slot_taken(update(store, &clash).await, CHEN, clash.window.unwrap());
    assert_eq!(stored(store, &moving).await, Some(moved));
    assert_eq!(audit_log(store).await, log);
    assert_eq!(
        claims(store, &[CHEN]).await,
        [
            quanta(CHEN, slot(24, 30)),
            quanta(CHEN, slot(30, 30)),
            quanta(CHEN, slot(48, 30))
        ]
        .concat()
    );
}

/// Two consultations trading slots at once: each finds the other's slot still taken,
/// as one after the other would, and neither waits for the other for ever.
pub async fn concurrent_swaps_of_two_slots_are_both_refused(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    const ROUNDS: u32 = 10;
    for round in 0..ROUNDS {
        let (here, there) = (slot(24, 30), slot(24 + 1 + i64::from(round), 30));
        let first = booking(2 * round, CHEN, here);
        let second = booking(2 * round + 1, CHEN, there);
        create(store.as_ref(), &first).await.unwrap();
        create(store.as_ref(), &second).await.unwrap();

        let tasks: Vec<_> = [(&first, there), (&second, here)]
            .into_iter()
            .map(|(consultation, window)| {
                let store = store.clone();
                let moved = consultation
                    .apply(Event::Reschedule { window, at: NOW })
                    .unwrap();
                tokio::spawn(async move { update(store.as_ref(), &moved).await })
            })
            .collect();
        for (task, window) in tasks.into_iter().zip([there, here]) {
            assert_slot_taken(task.await.unwrap(), CHEN, window);
        }
        assert_eq!(stored(store.as_ref(), &first).await, Some(first.clone()));
        assert_eq!(stored(store.as_ref(), &second).await, Some(second.clone()));

        // Clear the way for the next round.
        for consultation in [&first, &second] {
            let cancel = Event::Cancel {
                reason: "trying again".into(),
                at: NOW,
            };
            change(store.as_ref(), consultation, cancel).await;
        }
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn claimed_quanta_are_those_in_the_range(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    create(store, &booking(1, CHEN, slot(24, 30)))
        .await
        .unwrap();
    create(store, &booking(2, CHEN, slot(25, 60)))
        .await
        .unwrap();
    create(store, &booking(3, WANG, slot(24, 45)))
        .await
        .unwrap();
    let elsewhere = booking_at(4, (CLINIC, NURSE), (LI, OTHER_HOSPITAL), slot(24, 30));
    create(store, &elsewhere).await.unwrap();
    // An urgent consultation takes the doctor's time at once but claims no slot.
    let taken = urgent(5, "cardiology", (CLINIC, NURSE), NOW);
    create(store, &taken).await.unwrap();
    change(store, &taken, accept(CHEN, HOSPITAL, NOW)).await;
    assert_eq!(
        claims(store, &[CHEN]).await,
        [quanta(CHEN, slot(24, 30)), quanta(CHEN, slot(25, 60))].concat()
    );

    // From 10 minutes into the first slot to 15 minutes into the second, for two of
    // the three doctors, in the order asked for.
    let range = window(slot(24, 30).start() + Duration::minutes(10), 65);
    let found = store
        .claimed_quanta(&[user_id(WANG), user_id(CHEN)], &range)
        .await
        .unwrap();
    let expected: Vec<_> = [
        (WANG, slot(24, 45)),
        (CHEN, slot(24, 30)),
        (CHEN, slot(25, 60)),
    ]
    .into_iter()
    .flat_map(|(doctor, window)| {
        window
            .quanta()
            .into_iter()
            .filter(|at| range.contains(*at))
            .map(move |at| (user_id(doctor), at))
    })
    .collect();
    assert_eq!(found, expected);
    assert_eq!(found.len(), 7 + 4 + 3);
    assert_eq!(store.claimed_quanta(&[], &range).await.unwrap(), []);
}
