// #/audit: admins query the audit log by time, institution, user, role, consultation,
// action and outcome, page by page, and export what the filters select as a file.

import { h, replace, field, select, section, busy, checkbox, facts } from '../ui.js';
import { enumNames } from '../proto.js';
import { summary, actionLabel, outcomeLabel, rawDetails } from '../auditfmt.js';
import { loadInstitutions, institutionName } from '../directory.js';

const AUDIT = 'teleconsult.v1.AuditService';

// The actor roles a query may filter on.
const ACTOR_ROLES = ['clinic_staff', 'doctor', 'interpreter', 'admin'];

// Actions offered as suggestions; any dotted name may be typed.
const ACTIONS = [
  'account.sign_in', 'account.sign_out',
  'scheduling.book_consultation', 'scheduling.request_urgent_consultation',
  'scheduling.accept_consultation', 'scheduling.decline_consultation', 'scheduling.cancel_consultation',
  'scheduling.record_consent', 'scheduling.file_opinion', 'scheduling.sign_opinion',
  'scheduling.set_availability', 'session.join', 'session.leave', 'session.quality',
  'session.ice_state', 'session.start', 'session.end', 'directory.create_user', 'audit.checkpoint',
];

export function mount(container, ctx) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('audit.title'));
  const controller = new AbortController();
  const signal = controller.signal;

  const from = h('input', { type: 'datetime-local', testid: 'audit-from' });
  const to = h('input', { type: 'datetime-local', testid: 'audit-to' });
  const institution = h('select', { testid: 'audit-institution' }, h('option', { value: '' }, t('common.all')));
  const user = h('input', { type: 'text', testid: 'audit-user', autocapitalize: 'none', spellcheck: 'false' });
  const role = select([{ value: '', label: t('common.all') }, ...ACTOR_ROLES.map((r) => ({ value: r, label: t(`actorRole.${r}`) }))],
    { testid: 'audit-role' });
  const consultation = h('input', { type: 'text', testid: 'audit-consultation', autocapitalize: 'none', spellcheck: 'false' });
  const actionList = h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }, actionLabel(a))));
  const action = h('input', { type: 'text', list: 'audit-actions', testid: 'audit-action', autocapitalize: 'none', spellcheck: 'false' });
  const outcomes = enumNames('teleconsult.v1.Outcome').filter((o) => !o.endsWith('_UNSPECIFIED'));
  const outcome = select([{ value: '', label: t('common.all') }, ...outcomes.map((o) => ({ value: o, label: tEnum(o) }))],
    { testid: 'audit-outcome' });
  const { input: newestFirst, el: newestField } = checkbox(t('audit.newestFirst'), { testid: 'audit-newest-first', checked: true });
  const pageSize = select([25, 50, 100, 200, 500].map((n) => ({ value: n, label: String(n) })), { testid: 'audit-page-size', value: 50 });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'audit-query-submit' }, t('audit.query'));
  const reset = h('button', { type: 'reset', class: 'secondary', testid: 'audit-reset' }, t('audit.reset'));

  loadInstitutions().then((map) => {
    for (const i of map.values()) institution.appendChild(h('option', { value: i.id }, `${institutionName(i)} (${i.id})`));
  }).catch(() => {});

  const form = h('form', { testid: 'audit-form', class: 'search-form' },
    h('div', { class: 'grid' },
      field(t('audit.from'), from, t('common.shanghaiTime')),
      field(t('audit.to'), to, t('common.shanghaiTime')),
      field(t('audit.institution'), institution),
      field(t('audit.user'), user),
      field(t('audit.role'), role),
      field(t('audit.consultation'), consultation),
      field(t('audit.action'), action),
      field(t('audit.outcome'), outcome),
      field(t('audit.pageSize'), pageSize)),
    actionList,
    newestField,
    h('div', { class: 'actions' }, submit, reset));

  const results = h('div', { testid: 'audit-results', 'aria-live': 'polite' });
  const tokens = ['']; // page tokens of the pages seen so far: tokens[i] starts page i
  let pageIndex = 0;
  let query = null;

  function request(token, q = query) {
    const r = {
      institution_id: q.institution,
      user_id: q.user,
      role: q.role,
      consultation_id: q.consultation,
      action: q.action,
      outcome: q.outcome || 0,
      newest_first: q.newestFirst,
      page: { page_size: q.pageSize, page_token: token },
    };
    if (q.from) r.from = time.toTimestamp(q.from);
    if (q.to) r.to = time.toTimestamp(q.to);
    return r;
  }

  function render(records, nextToken) {
    const prev = h('button', { type: 'button', class: 'secondary', testid: 'audit-prev', disabled: pageIndex === 0 }, t('common.previous'));
    const next = h('button', { type: 'button', class: 'secondary', testid: 'audit-next', disabled: !nextToken }, t('common.next'));
    prev.addEventListener('click', () => busy(prev, () => show(pageIndex - 1)));
    next.addEventListener('click', () => busy(next, () => {
      tokens[pageIndex + 1] = nextToken;
      return show(pageIndex + 1);
    }));
    const rows = records.map((r) => h('tr', {
      testid: 'audit-row', 'data-seq': String(r.seq), 'data-action': r.action, 'data-outcome': r.outcome,
    },
    h('td', { class: 'num' }, String(r.seq)),
    h('td', { class: 'nowrap' }, time.formatDateTimeSeconds(r.at)),
    h('td', {}, r.actor_user_id, h('br'), h('span', { class: 'muted' }, r.actor_role, r.actor_institution_id ? ` · ${r.actor_institution_id}` : '')),
    h('td', {}, h('span', { title: r.action }, actionLabel(r.action)), h('br'), h('code', { class: 'muted' }, r.action)),
    h('td', { class: 'break' }, targetCell(r.target)),
    h('td', {}, h('span', { class: ['badge', `outcome-${String(r.outcome).replace('OUTCOME_', '').toLowerCase()}`] }, outcomeLabel(r.outcome))),
    h('td', { class: 'break' }, summary(r), rawDetails(r)),
    h('td', {}, h('code', { class: 'hash short', title: r.hash }, r.hash.slice(0, 12)))));
    replace(results,
      h('div', { class: 'toolbar' },
        h('span', { testid: 'audit-page', 'data-page': String(pageIndex + 1) }, t('audit.page', { page: pageIndex + 1, n: records.length })),
        prev, next),
      records.length === 0
        ? h('p', { class: 'empty', testid: 'audit-empty' }, t('audit.empty'))
        : h('div', { class: 'table-scroll' }, h('table', { class: 'data audit', testid: 'audit-table' },
          h('thead', {}, h('tr', {},
            ['audit.seq', 'audit.at', 'audit.actor', 'audit.action', 'audit.target', 'audit.outcome', 'audit.details', 'audit.hash']
              .map((k) => h('th', { scope: 'col' }, t(k))))),
          h('tbody', {}, rows))));
  }

  // A consultation target links to its timeline.
  function targetCell(target) {
    const m = /^consultation:(.+)$/.exec(target || '');
    if (!m) return target;
    return h('a', { href: `#/timeline/${encodeURIComponent(m[1])}`, testid: 'audit-target-timeline' }, target);
  }

  async function show(index) {
    ctx.clearError();
    try {
      const r = await ctx.unary(AUDIT, 'Query', request(tokens[index]), { signal });
      pageIndex = index;
      render(r.records, r.next_page_token);
      ctx.announce(t('audit.page', { page: index + 1, n: r.records.length }));
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  }

  // The filters as the form holds them; null (and an error shown) when a time is invalid.
  function readFilters() {
    const fromDate = from.value ? time.fromLocalInput(from.value) : null;
    const toDate = to.value ? time.fromLocalInput(to.value) : null;
    if ((from.value && !fromDate) || (to.value && !toDate)) {
      ctx.showError(t('audit.badTime'));
      return null;
    }
    return {
      from: fromDate,
      to: toDate,
      institution: institution.value,
      user: user.value.trim(),
      role: role.value,
      consultation: consultation.value.trim(),
      action: action.value.trim(),
      outcome: outcome.value,
      newestFirst: newestFirst.checked,
      pageSize: Number(pageSize.value),
    };
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    const filters = readFilters();
    if (!filters) return;
    query = filters;
    tokens.length = 1;
    busy(submit, () => show(0));
  });
  form.addEventListener('reset', () => {
    setTimeout(() => { newestFirst.checked = true; pageSize.value = '50'; }, 0);
  });

  const exporter = exportSection(ctx, { readFilters, request, signal });

  container.append(h('h1', {}, t('audit.title')), section(t('audit.filters'), form), exporter.el, results);
  return () => {
    controller.abort();
    exporter.dispose();
  };
}

// ---- export: the records the filters select, as a file ---------------------------

const EXPORT_FORMATS = [
  { value: 'FORMAT_JSONL', extension: 'jsonl', type: 'application/jsonl', label: 'audit.exportJsonl' },
  { value: 'FORMAT_FHIR_NDJSON', extension: 'ndjson', type: 'application/fhir+ndjson', label: 'audit.exportFhir' },
];

/**
 * AuditService/Export streams the records in chunks; they are joined into one Blob
 * offered as a download (an <a download> to a blob: URL, which the CSP allows), with
 * the chain head that the last chunk carries, to be compared with a verification.
 */
function exportSection(ctx, { readFilters, request, signal }) {
  const { t, time } = ctx;
  const format = select(EXPORT_FORMATS.map((f) => ({ value: f.value, label: t(f.label) })), { testid: 'audit-export-format' });
  const start = h('button', { type: 'submit', class: 'primary', testid: 'audit-export-submit' }, t('audit.exportStart'));
  const cancel = h('button', { type: 'button', class: 'secondary', testid: 'audit-export-cancel', hidden: true }, t('common.cancel'));
  const progress = h('p', { role: 'status', testid: 'audit-export-progress', class: 'muted' });
  const result = h('div', { testid: 'audit-export-result-box' });
  const form = h('form', { testid: 'audit-export-form' },
    h('p', { class: 'hint' }, t('audit.exportLead')),
    h('div', { class: 'inline-form export-controls' }, field(t('audit.exportFormat'), format), h('div', { class: 'actions' }, start, cancel)),
    progress,
    result);

  let url = null;
  let running = null; // the AbortController of the export under way

  function revoke() {
    if (url) URL.revokeObjectURL(url);
    url = null;
  }

  cancel.addEventListener('click', () => running && running.abort());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running) return;
    ctx.clearError();
    const filters = readFilters();
    if (!filters) return;
    const chosen = EXPORT_FORMATS.find((f) => f.value === format.value) || EXPORT_FORMATS[0];
    // Chain order (oldest first), whatever the list shows: the file ends at the head.
    const filter = request('', { ...filters, newestFirst: false, pageSize: 0 });
    delete filter.page;
    revoke();
    replace(result);
    const chunks = [];
    let bytes = 0;
    let records = 0;
    let head = null;
    running = new AbortController();
    const abort = () => running && running.abort();
    signal.addEventListener('abort', abort);
    start.disabled = true;
    start.setAttribute('aria-busy', 'true');
    cancel.hidden = false;
    replace(progress, t('audit.exportRunning'));
    try {
      await ctx.serverStream(AUDIT, 'Export', { filter, format: chosen.value }, {
        signal: running.signal,
        onMessage: (chunk) => {
          if (chunk.data.length) {
            chunks.push(chunk.data);
            bytes += chunk.data.length;
            for (const b of chunk.data) if (b === 0x0a) records += 1;
          }
          if (chunk.head_hash) head = { seq: String(chunk.head_seq), hash: chunk.head_hash };
          replace(progress, t('audit.exportProgress', { n: records, size: formatBytes(bytes) }));
        },
      });
      url = URL.createObjectURL(new Blob(chunks, { type: chosen.type }));
      const stamp = time.localParts(new Date());
      const name = `teleconsult-audit-${stamp.date}-${stamp.time.replace(':', '')}${head ? `-seq${head.seq}` : ''}.${chosen.extension}`;
      const link = h('a', { href: url, download: name, class: 'button primary', testid: 'audit-export-download' },
        t('audit.exportDownload', { name }));
      replace(progress, t('audit.exportDone', { n: records }));
      replace(result, h('div', { class: 'export-result', testid: 'audit-export-result', 'data-format': chosen.value, 'data-records': String(records) },
        facts([
          [t('audit.exportRecords'), String(records), 'audit-export-records'],
          [t('audit.exportSize'), formatBytes(bytes), 'audit-export-size'],
          [t('audit.exportHeadSeq'), head ? h('span', { 'data-seq': head.seq }, head.seq) : null, 'audit-export-head-seq'],
          [t('audit.exportHeadHash'), head ? h('code', { class: 'hash', 'data-hash': head.hash }, head.hash) : null, 'audit-export-head-hash'],
          [t('audit.exportedAt'), time.formatDateTimeSeconds(new Date())],
        ]),
        h('p', { class: 'hint' }, t('audit.exportHeadHint')),
        h('p', {}, link)));
      link.focus();
    } catch (e) {
      replace(progress, e.name === 'AbortError' ? t('audit.exportCancelled') : '');
      if (e.name !== 'AbortError') ctx.showError(e);
    } finally {
      signal.removeEventListener('abort', abort);
      running = null;
      start.disabled = false;
      start.removeAttribute('aria-busy');
      cancel.hidden = true;
    }
  });

  return { el: section(t('audit.exportTitle'), form), dispose: revoke };
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
