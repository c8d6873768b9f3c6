// #/opinion/<id>: the assigned doctor writes the opinion (FileOpinion saves a draft,
// which may be rewritten) and signs it (SignOpinion), after which it never changes;
// a correction is a new version. The signed result is shown with its hash and seal.

import { h, replace, field, section, busy, describeError } from '../ui.js';
import { Code } from '../grpcweb.js';
import { SCHEDULING, consultationFacts, opinionView } from '../consult.js';

export function mount(container, ctx, id) {
  const { t } = ctx;
  ctx.setTitle(t('opinion.formTitle'));
  const controller = new AbortController();
  const signal = controller.signal;

  let draft = null; // the OpinionReport last filed (unsigned)

  const consultationBox = h('div', { testid: 'opinion-consultation' }, t('common.loading'));
  const diagnosis = h('textarea', { testid: 'opinion-diagnosis', required: true, rows: 6, maxlength: 20000 });
  const recommendations = h('textarea', { testid: 'opinion-recommendations', required: true, rows: 6, maxlength: 20000 });
  const followUp = h('textarea', { testid: 'opinion-follow-up', rows: 3, maxlength: 20000 });
  const file = h('button', { type: 'submit', class: 'primary', testid: 'opinion-file' }, t('opinion.file'));
  const form = h('form', { testid: 'opinion-form' },
    field(t('opinion.diagnosis'), diagnosis),
    field(t('opinion.recommendations'), recommendations),
    field(t('opinion.followUp'), followUp, t('opinion.followUpHint')),
    h('div', { class: 'actions' }, file));
  const draftBox = h('div', { testid: 'opinion-draft', 'aria-live': 'polite' });
  const signedBox = h('div', { testid: 'opinion-result', 'aria-live': 'polite' });

  function renderDraft() {
    if (!draft) {
      replace(draftBox);
      return;
    }
    const sign = h('button', { type: 'button', class: 'primary big', testid: 'opinion-sign', 'data-version': draft.version }, t('opinion.sign'));
    sign.addEventListener('click', () => busy(sign, async () => {
      ctx.clearError();
      try {
        const signed = await ctx.unary(SCHEDULING, 'SignOpinion', { consultation_id: id, version: draft.version }, { signal });
        draft = null;
        renderDraft();
        showSigned(signed);
        loadConsultation();
        ctx.announce(t('opinion.signedNow'));
      } catch (e) {
        if (e.name !== 'AbortError') ctx.showError(e);
      }
    }));
    replace(draftBox, section(t('opinion.draftTitle', { version: draft.version }),
      h('p', { class: 'warning' }, t('opinion.signWarning')),
      opinionView(draft, { testid: 'opinion-draft-view' }),
      h('div', { class: 'actions' }, sign)));
  }

  // Once a version is signed, what the form files is a correction: a new version.
  const formSection = section(t('opinion.write'), form);
  function showSigned(report) {
    replace(signedBox, section(t('opinion.signedTitle'), opinionView(report)));
    replace(formSection.querySelector('h2'), t('opinion.correctTitle'));
    file.textContent = t('opinion.fileCorrection');
    formSection.dataset.correction = 'true';
  }

  function loadConsultation() {
    return ctx.unary(SCHEDULING, 'GetConsultation', { id }, { signal })
      .then((c) => replace(consultationBox, consultationFacts(c)))
      .catch((e) => {
        if (e.name === 'AbortError') return;
        replace(consultationBox, h('p', { class: 'form-error' }, describeError(e)));
        ctx.showError(e);
      });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    if (!diagnosis.value.trim() || !recommendations.value.trim()) {
      ctx.showError(t('opinion.missing'));
      (diagnosis.value.trim() ? recommendations : diagnosis).focus();
      return;
    }
    busy(file, async () => {
      try {
        draft = await ctx.unary(SCHEDULING, 'FileOpinion', {
          consultation_id: id,
          diagnosis_impression: diagnosis.value.trim(),
          recommendations: recommendations.value.trim(),
          follow_up: followUp.value.trim(),
        }, { signal });
        renderDraft();
        const sign = draftBox.querySelector('[data-testid="opinion-sign"]');
        if (sign) sign.focus();
      } catch (e) {
        if (e.name !== 'AbortError') ctx.showError(e);
      }
    });
  });

  container.append(
    h('p', { class: 'breadcrumb' }, h('a', { href: `#/consultation/${encodeURIComponent(id)}` }, t('opinion.back'))),
    h('h1', {}, t('opinion.formTitle')),
    h('div', { class: 'columns' },
      h('div', { class: 'col-main' },
        formSection,
        draftBox,
        signedBox),
      h('div', { class: 'col-side' }, section(t('consultation.details'), consultationBox))));

  loadConsultation();
  // A signed opinion already there: show it, and start a correction from its text.
  ctx.unary(SCHEDULING, 'GetOpinion', { consultation_id: id, version: 0 }, { signal })
    .then((report) => {
      showSigned(report);
      if (!diagnosis.value && !recommendations.value) {
        diagnosis.value = report.diagnosis_impression;
        recommendations.value = report.recommendations;
        followUp.value = report.follow_up;
      }
    })
    .catch((e) => {
      if (e.name === 'AbortError' || e.code === Code.NOT_FOUND || e.code === Code.FAILED_PRECONDITION) return;
      ctx.showError(e);
    });
  diagnosis.focus();
  return () => controller.abort();
}
