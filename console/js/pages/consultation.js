// #/consultation/<id>: one consultation, kept live: its state, times, participants and
// consent; what the caller's role does next (record consent, accept or decline,
// join the live session, write the opinion); and the signed opinion once there is one.

import { h, replace, field, select, section, describeError, busy } from '../ui.js';
import { Code } from '../grpcweb.js';
import { watchConsultations, newer } from '../live.js';
import {
  SCHEDULING, consultationFacts, consentView, opinionView, PENDING_STATES, JOINABLE_STATES,
  answerControls,
} from '../consult.js';

// States after which an opinion may exist.
const OPINION_STATES = ['CONSULTATION_STATE_AWAITING_REPORT', 'CONSULTATION_STATE_COMPLETED'];
// States in which consent may still matter.
const CONSENT_STATES = [...PENDING_STATES, ...JOINABLE_STATES];
const CANCELLABLE_STATES = [...PENDING_STATES, 'CONSULTATION_STATE_SCHEDULED'];

export function mount(container, ctx, id) {
  const { t, tEnum } = ctx;
  ctx.setTitle(t('consultation.title'));
  const role = ctx.principal && ctx.principal.role;
  const me = ctx.principal && ctx.principal.user_id;
  const controller = new AbortController();
  const signal = controller.signal;

  let consultation = null;
  let opinionLoadedFor = null; // the state for which the opinion was last fetched

  const heading = h('h1', {}, t('consultation.title'));
  const summary = h('div', { testid: 'consultation-detail' });
  const actions = h('div', { class: 'actions-panel', testid: 'consultation-actions' });
  const consent = h('div', {});
  const opinion = h('div', { testid: 'opinion-section' });
  const status = h('span', { class: 'live-status', testid: 'live-status', 'data-status': 'connecting' }, t('live.connecting'));

  container.append(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/consultations' }, t('consultation.back'))),
    h('div', { class: 'page-head' }, heading, status),
    h('div', { class: 'columns' },
      h('div', { class: 'col-main' }, section(t('consultation.details'), summary)),
      h('div', { class: 'col-side' },
        section(t('consultation.next'), actions),
        section(t('consent.title'), consent))),
    section(t('opinion.title'), opinion));

  // ------------------------------------------------------------ rendering

  function render() {
    const c = consultation;
    replace(heading, t('consultation.heading', { patient: c.patient_ref }));
    replace(summary, consultationFacts(c));
    renderActions(c);
    renderConsent(c);
    if (opinionLoadedFor !== c.state) loadOpinion(c);
  }

  function renderActions(c) {
    const items = [];
    if (JOINABLE_STATES.includes(c.state)) {
      items.push(h('p', {}, h('a', {
        href: `#/room/${encodeURIComponent(c.id)}`, class: 'button primary big', testid: 'join-session',
      }, t('consultation.join'))));
      if (!c.consent) items.push(h('p', { class: 'hint' }, t('consultation.joinNeedsConsent')));
    }
    if (role === 'ROLE_DOCTOR' && PENDING_STATES.includes(c.state)) {
      items.push(acceptDecline(c));
    }
    if (role === 'ROLE_DOCTOR' && c.doctor_id === me
      && ['CONSULTATION_STATE_IN_SESSION', 'CONSULTATION_STATE_AWAITING_REPORT', 'CONSULTATION_STATE_COMPLETED'].includes(c.state)) {
      items.push(h('p', {}, h('a', {
        href: `#/opinion/${encodeURIComponent(c.id)}`, class: 'button', testid: 'opinion-write',
      }, c.state === 'CONSULTATION_STATE_COMPLETED' ? t('consultation.correctOpinion') : t('consultation.writeOpinion'))));
    }
    if ((role === 'ROLE_CLINIC_STAFF' || (role === 'ROLE_DOCTOR' && c.doctor_id === me))
      && CANCELLABLE_STATES.includes(c.state)) {
      items.push(cancelForm(c));
    }
    if (role === 'ROLE_ADMIN') {
      items.push(h('p', {}, h('a', {
        href: `#/timeline/${encodeURIComponent(c.id)}`, class: 'button', testid: 'open-timeline',
      }, t('consultation.timeline'))));
    }
    if (items.length === 0) items.push(h('p', { class: 'hint' }, t('consultation.nothingToDo')));
    replace(actions, items);
  }

  function acceptDecline(c) {
    const notify = (key) => (updated) => {
      update(updated);
      ctx.showNotice(t(key));
    };
    return h('div', { class: 'stack' }, answerControls(ctx, c, {
      me, signal, accepted: notify('inbox.accepted'), declined: notify('inbox.declined'),
    }));
  }

  function cancelForm(c) {
    const details = h('details', { class: 'cancel' });
    const reason = h('input', { type: 'text', testid: 'cancel-reason', maxlength: 500 });
    const submit = h('button', { type: 'submit', class: 'danger', testid: 'cancel-submit' }, t('consultation.cancelConfirm'));
    const form = h('form', { class: 'inline-form' }, field(t('consultation.cancelReason'), reason), submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        ctx.showError(t('consultation.cancelNeedsReason'));
        reason.focus();
        return;
      }
      busy(submit, async () => {
        ctx.clearError();
        try {
          update(await ctx.unary(SCHEDULING, 'CancelConsultation', { id: c.id, reason: reason.value.trim() }, { signal }));
          ctx.showNotice(t('consultation.cancelled'));
        } catch (e) {
          if (e.name !== 'AbortError') ctx.showError(e);
        }
      });
    });
    details.append(h('summary', { testid: 'cancel-open' }, t('consultation.cancel')), form);
    return details;
  }

  function renderConsent(c) {
    const parts = [consentView(c.consent)];
    if (role === 'ROLE_CLINIC_STAFF' && !c.consent && CONSENT_STATES.includes(c.state)) {
      parts.push(consentForm(c));
    }
    replace(consent, parts);
  }

  function consentForm(c) {
    const consenter = select(
      ['CONSENTER_PATIENT', 'CONSENTER_GUARDIAN', 'CONSENTER_RELATIVE'].map((v) => ({ value: v, label: tEnum(v) })),
      { testid: 'consent-consenter' },
    );
    const method = select(
      ['METHOD_WRITTEN', 'METHOD_VERBAL_WITNESSED'].map((v) => ({ value: v, label: tEnum(v) })),
      { testid: 'consent-method' },
    );
    const witness = h('input', { type: 'text', testid: 'consent-witness', maxlength: 200 });
    const witnessField = field(t('consent.witness'), witness, t('consent.witnessHint'));
    const confirm = h('input', { type: 'checkbox', testid: 'consent-confirm', id: 'consent-confirm' });
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'consent-submit' }, t('consent.submit'));
    const syncWitness = () => {
      const verbal = method.value === 'METHOD_VERBAL_WITNESSED';
      witnessField.hidden = !verbal;
      witness.required = verbal;
    };
    method.addEventListener('change', syncWitness);
    syncWitness();
    const form = h('form', { testid: 'consent-form' },
      h('p', {}, t('consent.explain')),
      field(t('consent.consenter'), consenter),
      field(t('consent.method'), method),
      witnessField,
      h('div', { class: 'field field-check' }, confirm, h('label', { for: 'consent-confirm' }, t('consent.confirm'))),
      h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!confirm.checked) {
        ctx.showError(t('consent.needsConfirm'));
        confirm.focus();
        return;
      }
      const record = { consenter: consenter.value, method: method.value };
      if (method.value === 'METHOD_VERBAL_WITNESSED') record.witness = witness.value.trim();
      busy(submit, async () => {
        ctx.clearError();
        try {
          update(await ctx.unary(SCHEDULING, 'RecordConsent', { id: c.id, consent: record }, { signal }));
          ctx.showNotice(t('consent.saved'));
          ctx.announce(t('consent.saved'));
        } catch (e) {
          if (e.name !== 'AbortError') ctx.showError(e);
        }
      });
    });
    return form;
  }

  async function loadOpinion(c) {
    opinionLoadedFor = c.state;
    if (!OPINION_STATES.includes(c.state)) {
      replace(opinion, h('p', { class: 'hint', testid: 'opinion-none' }, t('opinion.notYet')));
      return;
    }
    try {
      const report = await ctx.unary(SCHEDULING, 'GetOpinion', { consultation_id: c.id, version: 0 }, { signal });
      replace(opinion, opinionView(report));
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e.code === Code.NOT_FOUND || e.code === Code.FAILED_PRECONDITION) {
        replace(opinion, h('p', { class: 'hint', testid: 'opinion-none' }, t('opinion.notSignedYet')));
      } else {
        replace(opinion, h('p', { class: 'form-error', testid: 'opinion-error' }, describeError(e)));
      }
    }
  }

  function update(c) {
    if (!c || c.id !== id) return;
    const before = consultation;
    consultation = newer(consultation, c);
    if (consultation === before) return;
    if (before && before.state !== consultation.state) {
      ctx.announce(t('live.changed', { patient: consultation.patient_ref, state: tEnum(consultation.state) }));
    }
    render();
  }

  async function load() {
    try {
      update(await ctx.unary(SCHEDULING, 'GetConsultation', { id }, { signal }));
    } catch (e) {
      if (e.name === 'AbortError') return;
      ctx.showError(e);
      if (!consultation) replace(summary, h('p', { class: 'form-error', testid: 'consultation-error' }, describeError(e)));
    }
  }

  const stop = watchConsultations({
    onOpen: () => { if (consultation) load(); },
    onEvent: (event) => update(event.consultation),
    onStatus: (s) => {
      status.dataset.status = s;
      replace(status, t(`live.${s}`));
    },
  });

  load();
  return () => {
    stop();
    controller.abort();
  };
}
