//! The broker's own scheduled work: urgent requests nobody accepted in time are
//! escalated to every doctor of the specialty (and their admins told), scheduled
//! consultations nobody joined by the end of their window become no-shows, and
//! sessions abandoned in progress (the broker that held them died) end.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::audit::{Actor, AuditEntry, Outcome, now_micros};
use crate::domain::consultation::{Consultation, ConsultationState, Event};
use crate::domain::directory::PageSize;
use crate::domain::policy::ConsultationScope;
use crate::events::{ConsultationEvents, NoticeKind};
use crate::store::{
    AuditQuery, ConsultationFilter, SharedStore, StoreError, consultation_sort_key,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// How long an urgent request waits for an on-call doctor before it is escalated.
    pub urgent_escalation: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
    /// A session whose log has been silent this long has nobody in it on any node (a
    /// live one logs every participant's quality every few seconds, and an emptied
    /// one is ended by its own node after the grace period): the broker that held it
    /// stopped without ending it. It ends, so that the doctor can write the opinion.
    pub abandoned_session: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            urgent_escalation: Duration::from_secs(15 * 60),
            sweep_interval: Duration::from_secs(30),
            abandoned_session: Duration::from_secs(10 * 60),
        }
    }
}

/// What one sweep changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub escalated: usize,
    pub no_shows: usize,
    pub abandoned: usize,
}

#[derive(Clone)]
pub struct Scheduler {
    store: SharedStore,
    events: ConsultationEvents,
    settings: SchedulerSettings,
}

impl Scheduler {
    pub fn new(
        store: SharedStore,
        events: ConsultationEvents,
        settings: SchedulerSettings,
    ) -> Self {
        Self {
            store,
            events,
            settings,
        }
    }

    /// Sweeps every `sweep_interval` until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        // The first sweep one interval after start, not at once: a restarted broker
        // catches up then, and tests that drive sweeps themselves are not raced.
        let period = self.settings.sweep_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.sweep(now_micros()).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        escalated = report.escalated,
                        no_shows = report.no_shows,
                        abandoned = report.abandoned,
                        "scheduler sweep"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "scheduler sweep failed"),
            }
        }
    }

    /// Applies what is due at `now`. Another node (or a doctor accepting at the same
    /// moment) may get there first; such consultations are skipped.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let waited_since = now - self.settings.urgent_escalation;
        for consultation in self.store.unanswered_urgent(waited_since).await? {
            let waited = (now - consultation.created_at).whole_seconds();
            let details =
                json!({ "waited_seconds": waited, "pool": "all doctors of the specialty" });
            if self
                .apply(
                    &consultation,
                    Event::Escalate { at: now },
                    "scheduling.escalate",
                    details,
                    NoticeKind::Escalated,
                )
                .await?
            {
                tracing::warn!(
                    consultation_id = %consultation.id,
                    specialty = %consultation.specialty,
                    waited_seconds = waited,
                    "urgent request unanswered; escalated to every doctor of the specialty"
                );
                report.escalated += 1;
            }
        }
        for consultation in self.store.missed(now).await? {
            if self
                .apply(
                    &consultation,
                    Event::MarkNoShow,
                    "scheduling.no_show",
                    json!({}),
                    NoticeKind::Changed,
                )
                .await?
            {
                report.no_shows += 1;
            }
        }
        let silent_since = now - self.settings.abandoned_session;
        for consultation in self.in_session().await? {
            let last = self.last_logged(&consultation).await?;
            if last.is_some_and(|at| at >= silent_since) {
                continue;
            }
            let details = json!({
                "reason": format!(
                    "nothing in the session log for {} s: the broker that held the session \
                     stopped without ending it",
                    self.settings.abandoned_session.as_secs()
                ),
            });
            if self
                .apply(
                    &consultation,
                    Event::EndSession,
                    "session.end",
                    details,
                    NoticeKind::Changed,
                )
                .await?
            {
                tracing::warn!(
                    consultation_id = %consultation.id,
                    "session abandoned in progress; ended"
                );
                report.abandoned += 1;
            }
        }
        Ok(report)
    }

    /// Every consultation in session, page by page.
    async fn in_session(&self) -> Result<Vec<Consultation>, StoreError> {
        let mut all = Vec::new();
        let mut filter = ConsultationFilter {
            states: vec![ConsultationState::InSession],
            limit: PageSize::new(PageSize::MAX),
            ..ConsultationFilter::default()
        };
        loop {
            let page = self
                .store
                .consultations(&ConsultationScope::All, &filter)
                .await?;
            let full = page.len() == PageSize::MAX as usize;
            filter.after = page
                .last()
                .map(|c| (consultation_sort_key(c), c.id.clone()));
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// When the session log (or anything else) last said something of `consultation`.
    async fn last_logged(
        &self,
        consultation: &Consultation,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let newest = self
            .store
            .query_audit(&AuditQuery {
                target: Some(format!("consultation:{}", consultation.id)),
                newest_first: true,
                limit: PageSize::new(1),
                ..AuditQuery::default()
            })
            .await?;
        Ok(newest.first().map(|record| record.entry.at))
    }

    async fn apply(
        &self,
        consultation: &Consultation,
        event: Event,
        action: &str,
        details: serde_json::Value,
        notice: NoticeKind,
    ) -> Result<bool, StoreError> {
        let Ok(next) = consultation.apply(event) else {
            return Ok(false);
        };
        let audit = AuditEntry::new(
            Actor::system("scheduler"),
            action,
            format!("consultation:{}", consultation.id),
            Outcome::Ok,
        )
        .target_institution(&consultation.inviting_institution)
        .details(details)
        .details(json!({
            "from": consultation.state.as_str(),
            "to": next.state.as_str(),
            "version": next.version,
        }));
        match self.store.update_consultation(&next, audit).await {
            Ok(()) => {
                self.events.publish(notice, &next);
                Ok(true)
            }
            Err(StoreError::Concurrent { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
