// #/inbox: a doctor's live inbox: the requests addressed to them and the urgent
// requests offered to their on-call pool, from ListConsultations and then Watch.
// Accept, or decline with a reason. Also the consultations where a patient is
// waiting in the live session.

import { h, replace, stateBadge, describeError } from '../ui.js';
import { watchConsultations, newer } from '../live.js';
import { SCHEDULING, specialtyLabel, PENDING_STATES, answerControls } from '../consult.js';
import { institutionLabel } from '../directory.js';

export function mount(container, ctx) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('inbox.title'));
  const me = ctx.principal && ctx.principal.user_id;
  const controller = new AbortController();
  const signal = controller.signal;
  const baseTitle = document.title;

  const requests = new Map(); // id -> Consultation, pending ones only
  const waiting = new Map(); // id -> Consultation whose patient waits in the session
  const taken = new Map(); // id -> Consultation accepted here, for a link

  const status = h('span', { class: 'live-status', testid: 'live-status', 'data-status': 'connecting' }, t('live.connecting'));
  const list = h('ul', { class: 'inbox', testid: 'inbox-list', 'aria-live': 'polite' });
  const empty = h('p', { class: 'empty', testid: 'inbox-empty' }, t('inbox.empty'));
  const waitingBox = h('div', { testid: 'inbox-waiting' });
  const acceptedBox = h('div', { testid: 'inbox-accepted' });

  function sortKey(c) {
    // Urgent first, then the oldest request first.
    const created = time.fromTimestamp(c.created_at);
    return [c.urgency === 'URGENCY_URGENT' ? 0 : 1, created ? created.getTime() : 0];
  }

  function item(c) {
    const controls = answerControls(ctx, c, {
      me,
      signal,
      accepted: (updated) => {
        apply(updated);
        taken.set(updated.id, updated);
        renderAccepted();
        ctx.announce(t('inbox.accepted'));
      },
      declined: (updated) => {
        apply(updated);
        ctx.announce(t('inbox.declined'));
      },
    });

    const urgent = c.urgency === 'URGENCY_URGENT';
    const created = time.fromTimestamp(c.created_at);
    return h('li', { class: ['inbox-item', urgent ? 'urgent' : null], testid: `inbox-item-${c.id}`, 'data-state': c.state, 'data-urgency': c.urgency },
      h('div', { class: 'inbox-head' },
        urgent ? h('span', { class: 'badge urgent' }, tEnum(c.urgency)) : null,
        stateBadge(c.state),
        h('strong', {}, specialtyLabel(c.specialty)),
        h('span', { class: 'muted' }, ' · ', institutionLabel(c.inviting_institution_id))),
      h('p', {}, h('span', { class: 'label' }, t('consult.patient'), t('common.colon')), c.patient_ref),
      h('p', { class: 'prewrap' }, h('span', { class: 'label' }, t('consult.reason'), t('common.colon')), c.reason),
      c.case_summary ? h('details', {}, h('summary', {}, t('consult.caseSummary')), h('p', { class: 'prewrap' }, c.case_summary)) : null,
      h('p', { class: 'muted' },
        c.start ? [t('consult.window'), t('common.colon'), time.formatRange(c.start, c.end), ' · '] : null,
        t('inbox.requestedAt', { at: time.formatDateTime(c.created_at) }),
        urgent && created ? [' · ', h('span', { class: 'waiting-since', 'data-since': String(created.getTime()) },
          t('urgent.elapsed', { elapsed: time.formatDuration((Date.now() - created.getTime()) / 1000) }))] : null),
      h('div', { class: 'inbox-actions' },
        controls,
        h('a', { href: `#/consultation/${encodeURIComponent(c.id)}`, testid: `inbox-open-${c.id}` }, t('inbox.open'))));
  }

  function render() {
    const sorted = [...requests.values()].sort((a, b) => {
      const [ua, ta] = sortKey(a);
      const [ub, tb] = sortKey(b);
      return ua - ub || ta - tb;
    });
    replace(list, sorted.map(item));
    empty.hidden = sorted.length > 0;
    const urgentCount = sorted.filter((c) => c.urgency === 'URGENCY_URGENT').length;
    document.title = sorted.length ? `(${sorted.length}${urgentCount ? '!' : ''}) ${baseTitle}` : baseTitle;
    renderWaiting();
  }

  function renderWaiting() {
    const items = [...waiting.values()].filter((c) => c.state === 'CONSULTATION_STATE_IN_SESSION' || c.state === 'CONSULTATION_STATE_SCHEDULED');
    replace(waitingBox, items.length === 0 ? null : h('div', { class: 'banner banner-notice', role: 'status' },
      h('h2', {}, t('inbox.waitingTitle')),
      h('ul', { class: 'plain' }, items.map((c) => h('li', { testid: `inbox-waiting-${c.id}` },
        t('inbox.patientWaiting', { patient: c.patient_ref }), ' ',
        h('a', { href: `#/room/${encodeURIComponent(c.id)}`, class: 'button primary', testid: `inbox-join-${c.id}` }, t('consultation.join')))))));
  }

  function renderAccepted() {
    const items = [...taken.values()];
    replace(acceptedBox, items.length === 0 ? null : h('div', { class: 'card' },
      h('h2', {}, t('inbox.acceptedTitle')),
      h('ul', { class: 'plain' }, items.map((c) => h('li', { testid: `inbox-accepted-${c.id}` },
        stateBadge(c.state), ' ', c.patient_ref, ' · ', c.start ? time.formatRange(c.start, c.end) : '', ' ',
        h('a', { href: `#/consultation/${encodeURIComponent(c.id)}`, testid: `inbox-accepted-open-${c.id}` }, t('inbox.open')))))));
  }

  // Files a consultation where it belongs: pending ones in the inbox, others out of it.
  function apply(c) {
    if (!c) return;
    const current = requests.get(c.id) || taken.get(c.id);
    const latest = newer(current, c);
    if (PENDING_STATES.includes(latest.state)) requests.set(latest.id, latest);
    else requests.delete(latest.id);
    if (taken.has(latest.id)) taken.set(latest.id, latest);
    render();
    renderAccepted();
  }

  async function load() {
    try {
      const r = await ctx.unary(SCHEDULING, 'ListConsultations', {
        states: PENDING_STATES, page: { page_size: 200 },
      }, { signal });
      requests.clear();
      for (const c of r.consultations) requests.set(c.id, c);
      render();
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  }

  // Urgent requests say how long they have waited, counting up.
  const ticker = setInterval(() => {
    for (const el of list.querySelectorAll('.waiting-since')) {
      const seconds = (Date.now() - Number(el.dataset.since)) / 1000;
      el.textContent = t('urgent.elapsed', { elapsed: time.formatDuration(seconds) });
    }
  }, 5000);

  const stop = watchConsultations({
    onOpen: () => load(),
    onEvent: (event) => {
      const c = event.consultation;
      if (!c) return;
      const isNew = !requests.has(c.id) && PENDING_STATES.includes(c.state);
      apply(c);
      if (event.kind === 'KIND_PATIENT_WAITING') {
        waiting.set(c.id, c);
        renderWaiting();
        ctx.announce(t('inbox.patientWaiting', { patient: c.patient_ref }));
      } else if (isNew) {
        ctx.announce(event.kind === 'KIND_URGENT_REQUEST' || c.urgency === 'URGENCY_URGENT'
          ? t('inbox.newUrgent', { specialty: specialtyLabel(c.specialty) })
          : t('inbox.newRequest', { patient: c.patient_ref }));
      }
      if (waiting.has(c.id)) {
        waiting.set(c.id, c);
        renderWaiting();
      }
    },
    onStatus: (s, error) => {
      status.dataset.status = s;
      replace(status, t(`live.${s}`));
      if (s === 'stopped' && error) ctx.showError(error);
      else if (error) status.title = describeError(error);
    },
  });

  container.append(
    h('div', { class: 'page-head' }, h('h1', {}, t('inbox.title')), status),
    waitingBox,
    h('p', { class: 'hint' }, t('inbox.lead')),
    list, empty,
    acceptedBox);
  load();
  return () => {
    clearInterval(ticker);
    stop();
    controller.abort();
    document.title = baseTitle;
  };
}
