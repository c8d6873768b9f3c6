// #/timeline[/<id>]: everything the audit log holds about one consultation, in order
// (booking, acceptance, consent, session joins and leaves, ICE states, quality
// summaries, the opinion), and the media quality of its session per participant.

import { h, replace, field, section, busy } from '../ui.js';
import { has } from '../i18n.js';
import { summary, actionLabel, outcomeLabel, rawDetails, details, qualityFigures } from '../auditfmt.js';

const AUDIT = 'teleconsult.v1.AuditService';

export function mount(container, ctx, id) {
  const { t, time } = ctx;
  ctx.setTitle(t('timeline.title'));
  const controller = new AbortController();

  const input = h('input', {
    type: 'text', testid: 'timeline-consultation', required: true, value: id || '',
    autocapitalize: 'none', spellcheck: 'false',
  });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'timeline-submit' }, t('timeline.show'));
  const form = h('form', { class: 'inline-form', testid: 'timeline-form' }, field(t('audit.consultation'), input), submit);
  const results = h('div', { testid: 'timeline-results', 'aria-live': 'polite' });

  function qualityTable(records) {
    // The latest summary of each participant (a final one wins over interim ones).
    const latest = new Map();
    const samples = new Map();
    for (const r of records) {
      if (r.action !== 'session.quality' && r.action !== 'session.leave') continue;
      const d = details(r);
      if (!d.quality || typeof d.quality !== 'object') continue;
      const who = d.quality.participant || r.actor_user_id;
      samples.set(who, (samples.get(who) || 0) + 1);
      latest.set(who, { figures: qualityFigures(d.quality), final: !!d.final || r.action === 'session.leave', at: r.at });
    }
    if (latest.size === 0) return h('p', { class: 'empty', testid: 'timeline-quality-empty' }, t('timeline.noQuality'));
    const fmt = (v, digits) => (v === null ? '—' : v.toFixed(digits));
    return h('div', { class: 'table-scroll' }, h('table', { class: 'data', testid: 'timeline-quality' },
      h('caption', {}, t('timeline.qualityCaption')),
      h('thead', {}, h('tr', {},
        ['quality.participant', 'quality.role', 'quality.packets', 'quality.lost', 'quality.loss', 'quality.jitterMs',
          'quality.rttMs', 'quality.bytesIn', 'quality.bytesOut', 'quality.samples', 'quality.asOf']
          .map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', {}, [...latest.entries()].map(([who, q]) => {
        const f = q.figures;
        const poor = f.lossPercent >= 5 || (f.rttMs !== null && f.rttMs >= 400);
        return h('tr', { testid: 'timeline-quality-row', 'data-participant': who, class: poor ? 'poor' : null },
          h('td', {}, who),
          h('td', {}, has(`sessionRole.${f.role}`) ? t(`sessionRole.${f.role}`) : f.role),
          h('td', { class: 'num' }, String(f.packets)),
          h('td', { class: 'num' }, String(f.lost)),
          h('td', { class: 'num' }, `${f.lossPercent.toFixed(1)}%`),
          h('td', { class: 'num' }, fmt(f.jitterMs, 1)),
          h('td', { class: 'num' }, fmt(f.rttMs, 0)),
          h('td', { class: 'num' }, String(f.bytesReceived)),
          h('td', { class: 'num' }, String(f.bytesSent)),
          h('td', { class: 'num' }, String(samples.get(who))),
          h('td', { class: 'nowrap' }, time.formatDateTimeSeconds(q.at), q.final ? ` (${t('quality.final')})` : ''));
      }))));
  }

  function render(records) {
    if (records.length === 0) {
      replace(results, h('p', { class: 'empty', testid: 'timeline-empty' }, t('timeline.empty')));
      return;
    }
    const entries = records.map((r) => h('li', {
      class: ['timeline-entry', `outcome-${String(r.outcome).replace('OUTCOME_', '').toLowerCase()}`],
      testid: 'timeline-entry', 'data-seq': String(r.seq), 'data-action': r.action, 'data-outcome': r.outcome,
    },
    h('time', { datetime: time.fromTimestamp(r.at) ? time.fromTimestamp(r.at).toISOString() : '' }, time.formatDateTimeSeconds(r.at)),
    h('div', { class: 'timeline-body' },
      h('p', {},
        h('strong', {}, actionLabel(r.action)), ' ',
        h('span', { class: ['badge', `outcome-${String(r.outcome).replace('OUTCOME_', '').toLowerCase()}`] }, outcomeLabel(r.outcome)), ' ',
        h('span', { class: 'muted' }, t('timeline.by', { actor: r.actor_user_id, role: r.actor_role }))),
      h('p', { class: 'break' }, summary(r)),
      h('p', { class: 'muted small' }, `#${r.seq} · `, h('code', {}, r.action), ' · ', h('code', { class: 'hash', title: r.hash }, r.hash.slice(0, 16))),
      rawDetails(r))));
    replace(results,
      section(t('timeline.quality'), qualityTable(records)),
      section(t('timeline.events', { n: records.length }), h('ol', { class: 'timeline', testid: 'timeline-list' }, entries)));
  }

  async function show(consultationId) {
    ctx.clearError();
    try {
      const r = await ctx.unary(AUDIT, 'Timeline', { consultation_id: consultationId }, { signal: controller.signal });
      render(r.records);
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(results);
      ctx.showError(e);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      input.focus();
      return;
    }
    const hash = `#/timeline/${encodeURIComponent(value)}`;
    if (window.location.hash === hash) busy(submit, () => show(value));
    else ctx.navigate(hash);
  });

  container.append(
    h('h1', {}, t('timeline.title')),
    section(t('timeline.choose'), form),
    results);
  if (id) {
    container.append(h('p', {}, h('a', { href: `#/consultation/${encodeURIComponent(id)}`, testid: 'timeline-open-consultation' }, t('timeline.openConsultation'))));
    show(id);
  } else {
    input.focus();
  }
  return () => controller.abort();
}
