// What several pages show of a consultation: specialties and languages, the
// consultation's facts, and a signed opinion with the checks of its seal.

import { h, facts, stateBadge, uid, field, busy } from './ui.js';
import { t, tEnum, has } from './i18n.js';
import * as time from './time.js';
import { institutionLabel, doctorLabel } from './directory.js';

export const SCHEDULING = 'teleconsult.v1.SchedulingService';

// The specialties of the example directory; any other lowercase code may be typed.
export const SPECIALTIES = [
  'cardiology', 'high-altitude-medicine', 'haematology', 'transfusion-medicine',
  'ophthalmology', 'dermatology', 'paediatrics', 'psychiatry', 'plastic-surgery',
];

export const LANGUAGES = ['LANGUAGE_MANDARIN', 'LANGUAGE_TIBETAN', 'LANGUAGE_ENGLISH'];

// States in which a request waits for a doctor.
export const PENDING_STATES = ['CONSULTATION_STATE_REQUESTED', 'CONSULTATION_STATE_ESCALATED'];
// States in which the live session may be joined.
export const JOINABLE_STATES = ['CONSULTATION_STATE_SCHEDULED', 'CONSULTATION_STATE_IN_SESSION'];

/** A specialty code in words, when the console knows it; else the code itself. */
export function specialtyLabel(code) {
  if (!code) return '—';
  return has(`specialty.${code}`) ? t(`specialty.${code}`) : code;
}

/** A specialty text input with the known specialties offered as suggestions. */
export function specialtyInput(attrs = {}) {
  const listId = uid('specialties');
  const list = h('datalist', { id: listId },
    SPECIALTIES.map((code) => h('option', { value: code }, specialtyLabel(code))));
  const input = h('input', {
    type: 'text', list: listId, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
    pattern: '[a-z0-9\\-]+', ...attrs,
  });
  return { input, list };
}

/** A select of consultation languages, with "any" first. */
export function languageSelect(attrs = {}) {
  const el = h('select', attrs, h('option', { value: '' }, t('common.any')));
  for (const name of LANGUAGES) el.appendChild(h('option', { value: name }, tEnum(name)));
  return el;
}

/** The facts of a consultation, as a description list. */
export function consultationFacts(c) {
  const seconds = Number(c.seconds_to_accept || 0);
  return facts([
    [t('consult.state'), stateBadge(c.state)],
    [t('consult.urgency'), h('span', { testid: 'consultation-urgency', 'data-urgency': c.urgency }, tEnum(c.urgency))],
    [t('consult.specialty'), specialtyLabel(c.specialty), 'consultation-specialty'],
    [t('consult.patient'), c.patient_ref, 'consultation-patient'],
    [t('consult.window'), c.start ? time.formatRange(c.start, c.end) : t('consult.notScheduled'), 'consultation-window'],
    [t('consult.reason'), h('span', { class: 'prewrap' }, c.reason), 'consultation-reason'],
    [t('consult.caseSummary'), c.case_summary ? h('span', { class: 'prewrap' }, c.case_summary) : '', 'consultation-case-summary'],
    [t('consult.stateReason'), c.state_reason || undefined, 'consultation-state-reason'],
    [t('consult.inviting'), institutionLabel(c.inviting_institution_id, 'consultation-inviting')],
    [t('consult.requestedBy'), c.requested_by, 'consultation-requested-by'],
    [t('consult.doctor'), c.doctor_id ? doctorLabel(c.doctor_id, 'consultation-doctor') : t('consult.noDoctorYet')],
    [t('consult.consulting'), c.consulting_institution_id ? institutionLabel(c.consulting_institution_id, 'consultation-consulting') : ''],
    [t('consult.additionalDoctors'), c.additional_doctor_ids.length
      ? c.additional_doctor_ids.map((id, i) => [i ? ', ' : '', doctorLabel(id)]).flat() : '', 'consultation-additional-doctors'],
    [t('consult.interpreters'), c.interpreter_ids.join(', '), 'consultation-interpreters'],
    [t('consult.createdAt'), time.formatDateTime(c.created_at), 'consultation-created-at'],
    [t('consult.acceptedAt'), c.accepted_at ? time.formatDateTime(c.accepted_at) : '', 'consultation-accepted-at'],
    [t('consult.escalatedAt'), c.escalated_at ? time.formatDateTime(c.escalated_at) : undefined, 'consultation-escalated-at'],
    [t('consult.secondsToAccept'), seconds > 0 ? time.formatDuration(seconds) : undefined, 'consultation-seconds-to-accept'],
    [t('consult.id'), h('code', {}, c.id), 'consultation-id'],
  ]);
}

/** The consent record of a consultation, or a note that there is none. */
export function consentView(consent) {
  if (!consent) {
    return h('p', { class: 'warning', testid: 'consent-status', 'data-recorded': 'false' }, t('consent.none'));
  }
  return h('div', { testid: 'consent-status', 'data-recorded': 'true' },
    h('p', { class: 'ok' }, t('consent.recorded')),
    facts([
      [t('consent.consenter'), tEnum(consent.consenter)],
      [t('consent.method'), tEnum(consent.method)],
      [t('consent.witness'), consent.witness || undefined],
      [t('consent.recordedBy'), consent.recorded_by],
      [t('consent.recordedAt'), time.formatDateTime(consent.recorded_at)],
    ]));
}

// ------------------------------------------------------------ opinion and its seal

const encoder = new TextEncoder();

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(n) >>> 0, false);
  return b;
}

function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)), false);
  return b;
}

// A length-prefixed field of the broker's canonical encodings.
function lp(bytes) {
  const data = typeof bytes === 'string' ? encoder.encode(bytes) : bytes;
  return concat([u32(data.length), data]);
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The SHA-256 the broker records for a signed opinion, recomputed from its fields. */
export function opinionContentHash(report) {
  return sha256Hex(concat([
    lp('teleconsult-opinion-v1'),
    lp(report.consultation_id),
    lp(u32(report.version)),
    lp(u32(report.supersedes_version || 0)),
    lp(report.author_id),
    lp(report.diagnosis_impression),
    lp(report.recommendations),
    lp(report.follow_up),
  ]));
}

/** The hash of an audit record, recomputed from its fields as the audit chain does. */
export function auditRecordHash(record) {
  const at = record.at || { seconds: 0, nanos: 0 };
  const micros = BigInt(at.seconds) * 1000000n + BigInt(Math.floor(Number(at.nanos) / 1000));
  const outcome = String(record.outcome).replace(/^OUTCOME_/, '').toLowerCase();
  const parts = [
    encoder.encode(record.prev_hash),
    lp('teleconsult-audit-v1'),
    u64(record.seq),
    u64(micros),
    lp(record.actor_user_id),
    lp(record.actor_institution_id),
    lp(record.actor_role),
    lp(record.actor_certificate_fingerprint),
    lp(record.action),
    lp(record.target),
    record.target_institution_id
      ? concat([new Uint8Array([1]), lp(record.target_institution_id)])
      : new Uint8Array([0]),
    lp(outcome),
    lp(record.details),
  ];
  return sha256Hex(concat(parts));
}

/**
 * Checks a signed opinion as the proto describes: the content hash recomputed from the
 * fields, found in the seal's details, and the seal record's own hash.
 * Resolves to { content, inSeal, seal } booleans (null when the check could not run).
 */
export async function checkOpinion(report) {
  const result = { content: null, inSeal: null, seal: null };
  if (!globalThis.crypto || !crypto.subtle) return result;
  result.content = (await opinionContentHash(report)) === report.content_hash;
  if (report.seal) {
    let details = {};
    try {
      details = JSON.parse(report.seal.details || '{}');
    } catch (_) {
      details = {};
    }
    result.inSeal = details.content_hash === report.content_hash;
    result.seal = (await auditRecordHash(report.seal)) === report.seal.hash;
  }
  return result;
}

function checkLine(ok, good, bad, testid) {
  if (ok === null) return h('li', { class: 'check-unknown', testid, 'data-ok': 'unknown' }, t('opinion.checkUnavailable'));
  return h('li', { class: ok ? 'check-ok' : 'check-bad', testid, 'data-ok': String(ok) }, ok ? good : bad);
}

/** A signed (or draft) opinion, with its hash and seal. */
export function opinionView(report, { testid = 'opinion-view' } = {}) {
  const checks = h('ul', { class: 'checks', testid: 'opinion-checks', 'aria-live': 'polite' });
  const el = h('article', { class: 'opinion', testid, 'data-signed': String(report.signed), 'data-version': report.version },
    h('p', { class: report.signed ? 'ok' : 'warning', testid: 'opinion-status' },
      report.signed ? t('opinion.signedBy', { author: report.author_id, at: time.formatDateTime(report.signed_at) })
        : t('opinion.draftBy', { author: report.author_id, version: report.version })),
    h('h3', {}, t('opinion.diagnosis')),
    h('p', { class: 'prewrap', testid: 'opinion-view-diagnosis' }, report.diagnosis_impression),
    h('h3', {}, t('opinion.recommendations')),
    h('p', { class: 'prewrap', testid: 'opinion-view-recommendations' }, report.recommendations),
    h('h3', {}, t('opinion.followUp')),
    h('p', { class: 'prewrap', testid: 'opinion-view-follow-up' }, report.follow_up || '—'),
    facts([
      [t('opinion.version'), String(report.version), 'opinion-version'],
      [t('opinion.supersedes'), report.supersedes_version ? String(report.supersedes_version) : undefined],
      [t('opinion.author'), doctorLabel(report.author_id, 'opinion-author')],
      [t('opinion.createdAt'), time.formatDateTime(report.created_at)],
      [t('opinion.signedAt'), report.signed ? time.formatDateTime(report.signed_at) : undefined, 'opinion-signed-at'],
      [t('opinion.contentHash'), report.content_hash ? h('code', { class: 'hash' }, report.content_hash) : undefined, 'opinion-hash'],
    ]));
  if (report.seal) {
    const s = report.seal;
    el.appendChild(h('div', { class: 'seal', testid: 'opinion-seal', 'data-seq': String(s.seq) },
      h('h3', {}, t('opinion.seal')),
      facts([
        [t('audit.seq'), String(s.seq), 'opinion-seal-seq'],
        [t('audit.at'), time.formatDateTimeSeconds(s.at)],
        [t('audit.action'), s.action],
        [t('audit.actor'), `${s.actor_user_id} (${s.actor_role})`],
        [t('audit.hash'), h('code', { class: 'hash' }, s.hash), 'opinion-seal-hash'],
        [t('audit.prevHash'), h('code', { class: 'hash' }, s.prev_hash)],
      ])));
  }
  if (report.signed) {
    el.appendChild(h('h3', {}, t('opinion.checks')));
    el.appendChild(checks);
    checkOpinion(report).then((r) => {
      checks.append(
        checkLine(r.content, t('opinion.checkContentOk'), t('opinion.checkContentBad'), 'opinion-check-content'),
      );
      if (report.seal) {
        checks.append(
          checkLine(r.inSeal, t('opinion.checkInSealOk'), t('opinion.checkInSealBad'), 'opinion-check-in-seal'),
          checkLine(r.seal, t('opinion.checkSealOk'), t('opinion.checkSealBad'), 'opinion-check-seal'),
        );
      }
    }).catch((e) => checks.append(h('li', { class: 'check-unknown' }, String(e.message))));
  }
  return el;
}

/** The doctor's answer to a request: accept, and for the doctor the request names,
 *  decline with a reason (a pool request is left to the others). `accepted` and
 *  `declined` get the consultation the broker returned. */
export function answerControls(ctx, c, { me, signal, accepted, declined }) {
  const answer = (button, method, request, done) => busy(button, async () => {
    ctx.clearError();
    try {
      done(await ctx.unary(SCHEDULING, method, request, { signal }));
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  });
  const accept = h('button', { type: 'button', class: 'primary', testid: `accept-${c.id}` }, t('inbox.accept'));
  accept.addEventListener('click', () => answer(accept, 'AcceptConsultation', { id: c.id }, accepted));
  const controls = [accept];
  if (c.doctor_id === me) {
    const reason = h('input', { type: 'text', testid: `decline-reason-${c.id}`, maxlength: 500 });
    const decline = h('button', { type: 'submit', class: 'danger', testid: `decline-${c.id}` }, t('inbox.decline'));
    const form = h('form', { class: 'inline-form decline-form' }, field(t('inbox.declineReason'), reason), decline);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        ctx.showError(t('inbox.declineNeedsReason'));
        reason.focus();
        return;
      }
      answer(decline, 'DeclineConsultation', { id: c.id, reason: reason.value.trim() }, declined);
    });
    controls.push(form);
  }
  return controls;
}
