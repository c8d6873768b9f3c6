// #/urgent: clinic staff ask the on-call pool of a specialty for an urgent consult.
// #/urgent/<id>: watch that request being picked up, live (the "one-hour medical
// service circle": an urgent consult should start within 60 minutes).

import { h, replace, field, section, stateBadge, busy, describeError } from '../ui.js';
import { watchConsultations, newer } from '../live.js';
import { SCHEDULING, specialtyInput, specialtyLabel, PENDING_STATES } from '../consult.js';
import { doctorLabel, institutionLabel } from '../directory.js';

const TARGET_SECONDS = 60 * 60;

export function mount(container, ctx, id) {
  return id ? mountTracker(container, ctx, id) : mountForm(container, ctx);
}

function mountForm(container, ctx) {
  const { t } = ctx;
  ctx.setTitle(t('urgent.title'));
  const controller = new AbortController();

  const { input: specialty, list } = specialtyInput({ testid: 'urgent-specialty', required: true });
  const patient = h('input', {
    type: 'text', testid: 'urgent-patient-ref', required: true, minlength: 3, maxlength: 64,
    autocomplete: 'off', spellcheck: 'false',
  });
  const reason = h('textarea', { testid: 'urgent-reason', required: true, rows: 3, maxlength: 2000 });
  const summary = h('textarea', { testid: 'urgent-case-summary', rows: 5, maxlength: 8000 });
  const submit = h('button', { type: 'submit', class: 'danger big', testid: 'urgent-submit' }, t('urgent.submit'));
  const form = h('form', { testid: 'urgent-form' },
    h('p', { class: 'lead' }, t('urgent.lead')),
    field(t('consult.specialty'), specialty, t('find.specialtyHint')),
    list,
    field(t('consult.patient'), patient, t('book.patientHint')),
    field(t('consult.reason'), reason, t('book.reasonHint')),
    field(t('consult.caseSummary'), summary, t('book.summaryHint')),
    h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    if (!specialty.value.trim() || !patient.value.trim() || !reason.value.trim()) {
      ctx.showError(t('book.missing'));
      (specialty.value.trim() ? (patient.value.trim() ? reason : patient) : specialty).focus();
      return;
    }
    busy(submit, async () => {
      try {
        const c = await ctx.unary(SCHEDULING, 'RequestUrgentConsultation', {
          specialty: specialty.value.trim().toLowerCase(),
          patient_ref: patient.value.trim(),
          reason: reason.value.trim(),
          case_summary: summary.value.trim(),
        }, { signal: controller.signal });
        ctx.navigate(`#/urgent/${encodeURIComponent(c.id)}`, { notice: t('urgent.sent') });
      } catch (e) {
        if (e.name !== 'AbortError') ctx.showError(e);
      }
    });
  });

  container.append(h('h1', {}, t('urgent.title')), section(t('urgent.formTitle'), form));
  specialty.focus();
  return () => controller.abort();
}

function mountTracker(container, ctx, id) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('urgent.trackTitle'));
  const controller = new AbortController();
  let consultation = null;

  const status = h('span', { class: 'live-status', testid: 'live-status', 'data-status': 'connecting' }, t('live.connecting'));
  const panel = h('div', { class: 'urgent-panel', testid: 'urgent-status', 'aria-live': 'polite' }, t('common.loading'));
  const elapsed = h('p', { class: 'elapsed', testid: 'urgent-elapsed', 'aria-live': 'off' });

  function render() {
    const c = consultation;
    const pending = PENDING_STATES.includes(c.state);
    panel.dataset.state = c.state;
    // "Sent, waiting for a specialist" is no longer true.
    if (!pending) ctx.showNotice(null);
    replace(panel,
      h('p', { class: 'big-state' }, stateBadge(c.state, 'urgent-state')),
      pending
        ? h('p', { class: 'lead' }, c.state === 'CONSULTATION_STATE_ESCALATED' ? t('urgent.escalated') : t('urgent.waiting'))
        : c.doctor_id
          ? h('p', { class: 'lead ok', testid: 'urgent-picked-up' },
            t('urgent.pickedUp', { after: time.formatDuration(c.seconds_to_accept) }), ' ',
            doctorLabel(c.doctor_id, 'urgent-doctor'), ' · ', institutionLabel(c.consulting_institution_id))
          : h('p', { class: 'lead' }, c.state_reason || ''),
      h('dl', { class: 'facts' },
        h('dt', {}, t('consult.specialty')), h('dd', {}, specialtyLabel(c.specialty)),
        h('dt', {}, t('consult.patient')), h('dd', {}, c.patient_ref),
        h('dt', {}, t('urgent.requestedAt')), h('dd', {}, time.formatDateTime(c.created_at)),
        c.escalated_at ? [h('dt', {}, t('consult.escalatedAt')), h('dd', {}, time.formatDateTime(c.escalated_at))] : null),
      h('p', {},
        h('a', { href: `#/consultation/${encodeURIComponent(c.id)}`, class: 'button', testid: 'urgent-open-detail' },
          t('urgent.openDetail'))));
    tick();
  }

  // The time since the request, counting up while it waits.
  function tick() {
    if (!consultation) return;
    const c = consultation;
    const created = time.fromTimestamp(c.created_at);
    if (!created) return;
    const pending = PENDING_STATES.includes(c.state);
    const seconds = pending ? (Date.now() - created.getTime()) / 1000 : Number(c.seconds_to_accept || 0);
    elapsed.classList.toggle('late', pending && seconds > TARGET_SECONDS);
    replace(elapsed, pending
      ? t('urgent.elapsed', { elapsed: time.formatDuration(seconds) })
      : seconds > 0 ? t('urgent.acceptedAfter', { elapsed: time.formatDuration(seconds) }) : '');
  }
  const timer = setInterval(tick, 1000);

  function update(c) {
    if (!c || c.id !== id) return;
    const before = consultation;
    consultation = newer(consultation, c);
    if (before === consultation) return;
    if (before && before.state !== consultation.state) {
      ctx.announce(t('live.changed', { patient: consultation.patient_ref, state: tEnum(consultation.state) }));
    }
    render();
  }

  async function load() {
    try {
      update(await ctx.unary(SCHEDULING, 'GetConsultation', { id }, { signal: controller.signal }));
    } catch (e) {
      if (e.name === 'AbortError') return;
      ctx.showError(e);
      if (!consultation) replace(panel, h('p', { class: 'form-error' }, describeError(e)));
    }
  }

  const stop = watchConsultations({
    onOpen: () => load(),
    onEvent: (event) => update(event.consultation),
    onStatus: (s) => {
      status.dataset.status = s;
      replace(status, t(`live.${s}`));
    },
  });

  container.append(
    h('div', { class: 'page-head' }, h('h1', {}, t('urgent.trackTitle')), status),
    section(t('urgent.statusTitle'), panel, elapsed),
    h('p', {}, h('a', { href: '#/urgent', testid: 'urgent-new' }, t('urgent.another'))));
  load();
  return () => {
    clearInterval(timer);
    stop();
    controller.abort();
  };
}
