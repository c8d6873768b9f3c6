// #/verify: recompute the audit hash chain on the broker and say plainly whether it is
// intact, or at which record it breaks and why.

import { h, replace, field, section, busy, facts } from '../ui.js';

const AUDIT = 'teleconsult.v1.AuditService';

export function mount(container, ctx) {
  const { t } = ctx;
  ctx.setTitle(t('verify.title'));
  const controller = new AbortController();

  const fromSeq = h('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric', testid: 'verify-from', placeholder: '0' });
  const toSeq = h('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric', testid: 'verify-to', placeholder: '0' });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'verify-submit' }, t('verify.submit'));
  const form = h('form', { testid: 'verify-form' },
    h('p', { class: 'hint' }, t('verify.lead')),
    h('div', { class: 'grid' },
      field(t('verify.from'), fromSeq, t('verify.zeroHint')),
      field(t('verify.to'), toSeq, t('verify.zeroHint'))),
    h('div', { class: 'actions' }, submit));
  const result = h('div', { testid: 'verify-result-box', 'aria-live': 'polite' });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    const request = { from_seq: fromSeq.value.trim() || 0, to_seq: toSeq.value.trim() || 0 };
    replace(result);
    busy(submit, async () => {
      try {
        const r = await ctx.unary(AUDIT, 'Verify', request, { signal: controller.signal });
        const head = facts([
          [t('verify.checked'), String(r.records_checked), 'verify-records-checked'],
          [r.intact ? t('verify.headSeq') : t('verify.lastGoodSeq'), String(r.head_seq), 'verify-head-seq'],
          [t('verify.headHash'), r.head_hash ? h('code', { class: 'hash' }, r.head_hash) : '', 'verify-head-hash'],
          [t('verify.checkedAt'), ctx.time.formatDateTimeSeconds(new Date())],
        ]);
        replace(result, r.intact
          ? h('div', { class: 'verdict verdict-ok', testid: 'verify-result', 'data-intact': 'true', role: 'status' },
            h('p', { class: 'verdict-title' }, '✓ ', t('verify.intact', { n: r.records_checked })), head)
          : h('div', { class: 'verdict verdict-bad', testid: 'verify-result', 'data-intact': 'false', 'data-first-bad-seq': String(r.first_bad_seq), role: 'alert' },
            h('p', { class: 'verdict-title' }, '✗ ', t('verify.broken', { seq: r.first_bad_seq })),
            h('p', { testid: 'verify-problem' }, r.problem),
            head));
      } catch (e) {
        if (e.name !== 'AbortError') ctx.showError(e);
      }
    });
  });

  container.append(h('h1', {}, t('verify.title')), section(t('verify.rangeTitle'), form), result);
  submit.focus();
  return () => controller.abort();
}
