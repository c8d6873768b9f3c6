// #/consultations: the consultations the caller may see (the broker decides which:
// a clinic's own, a doctor's, an interpreter's, an institution's for its admins),
// kept live with Watch.

import { h, replace, select, stateBadge, describeError } from '../ui.js';
import { enumNames } from '../proto.js';
import { watchConsultations, newer } from '../live.js';
import { SCHEDULING, specialtyLabel } from '../consult.js';
import { doctorLabel, institutionLabel } from '../directory.js';

const PAGE_SIZE = 100;

export function mount(container, ctx) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('consultations.title'));
  const role = ctx.principal && ctx.principal.role;

  const byId = new Map();
  let nextToken = '';
  let controller = new AbortController();

  const states = enumNames('teleconsult.v1.ConsultationState').filter((s) => !s.endsWith('_UNSPECIFIED'));
  const stateFilter = select(
    [{ value: '', label: t('common.all') }, ...states.map((s) => ({ value: s, label: tEnum(s) }))],
    { testid: 'consultations-filter-state', id: 'consultations-filter-state' },
  );
  const status = h('span', { class: 'live-status', testid: 'live-status', 'data-status': 'connecting' }, t('live.connecting'));
  const tbody = h('tbody', { testid: 'consultations-body' });
  const empty = h('p', { class: 'empty', testid: 'consultations-empty', hidden: true }, t('consultations.empty'));
  const more = h('button', { type: 'button', class: 'secondary', testid: 'consultations-more', hidden: true }, t('common.more'));

  const table = h('table', { class: 'data', testid: 'consultations-table' },
    h('caption', { class: 'visually-hidden' }, t('consultations.title')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('consult.window')),
      h('th', { scope: 'col' }, t('consult.state')),
      h('th', { scope: 'col' }, t('consult.urgency')),
      h('th', { scope: 'col' }, t('consult.specialty')),
      h('th', { scope: 'col' }, t('consult.patient')),
      h('th', { scope: 'col' }, role === 'ROLE_CLINIC_STAFF' ? t('consult.doctor') : t('consult.inviting')),
      h('th', { scope: 'col' }, t('consult.createdAt')))),
    tbody);

  function sortKey(c) {
    const d = time.fromTimestamp(c.created_at);
    return d ? d.getTime() : 0;
  }

  function visible(c) {
    return !stateFilter.value || c.state === stateFilter.value;
  }

  function row(c) {
    const link = h('a', { href: `#/consultation/${encodeURIComponent(c.id)}`, testid: `consultation-link-${c.id}` },
      c.start ? time.formatRange(c.start, c.end) : t('consult.notScheduled'));
    return h('tr', { testid: `consultation-row-${c.id}`, 'data-state': c.state, class: c.urgency === 'URGENCY_URGENT' ? 'urgent' : null },
      h('td', {}, link),
      h('td', {}, stateBadge(c.state)),
      h('td', {}, tEnum(c.urgency)),
      h('td', {}, specialtyLabel(c.specialty)),
      h('td', {}, c.patient_ref),
      h('td', {}, role === 'ROLE_CLINIC_STAFF'
        ? (c.doctor_id ? doctorLabel(c.doctor_id) : t('consult.noDoctorYet'))
        : institutionLabel(c.inviting_institution_id)),
      h('td', {}, time.formatDateTime(c.created_at)));
  }

  function render() {
    const list = [...byId.values()].filter(visible).sort((a, b) => sortKey(b) - sortKey(a));
    replace(tbody, list.map(row));
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
    more.hidden = !nextToken;
  }

  async function load({ append = false } = {}) {
    const request = { page: { page_size: PAGE_SIZE, page_token: append ? nextToken : '' } };
    if (stateFilter.value) request.states = [stateFilter.value];
    try {
      const r = await ctx.unary(SCHEDULING, 'ListConsultations', request, { signal: controller.signal });
      if (!append) {
        // Keep what live events brought that a filtered listing does not include.
        for (const [id, c] of byId) if (visible(c)) byId.delete(id);
      }
      for (const c of r.consultations) byId.set(c.id, newer(byId.get(c.id), c));
      nextToken = r.next_page_token;
      render();
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  }

  const stop = watchConsultations({
    onOpen: () => load(),
    onEvent: (event) => {
      const c = event.consultation;
      if (!c) return;
      const before = byId.get(c.id);
      byId.set(c.id, newer(before, c));
      render();
      if (!before || before.state !== c.state) {
        ctx.announce(t('live.changed', { patient: c.patient_ref, state: tEnum(c.state) }));
      }
    },
    onStatus: (s, error) => {
      status.dataset.status = s;
      replace(status, t(`live.${s}`));
      if (s === 'stopped' && error) ctx.showError(error);
      else if (s === 'retrying' && error) status.title = describeError(error);
    },
  });

  stateFilter.addEventListener('change', () => load());
  more.addEventListener('click', () => load({ append: true }));

  container.append(
    h('div', { class: 'page-head' },
      h('h1', {}, t('consultations.title')),
      status),
    h('div', { class: 'toolbar' },
      h('label', { for: 'consultations-filter-state' }, t('consultations.filterState')),
      stateFilter,
      role === 'ROLE_CLINIC_STAFF'
        ? [h('a', { href: '#/find', class: 'button', testid: 'consultations-new' }, t('consultations.new')),
          h('a', { href: '#/urgent', class: 'button danger', testid: 'consultations-urgent' }, t('consultations.urgent'))]
        : null),
    table, empty, more);

  load();
  return () => {
    stop();
    controller.abort();
  };
}
