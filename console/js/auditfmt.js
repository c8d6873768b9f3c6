// Audit records in words: what the details of a record say, and the media quality a
// session's records carry (as the broker's `audit` command line prints them).

import { h } from './ui.js';
import { t, tEnum, has } from './i18n.js';

/** The details JSON of a record as an object (empty when it is not an object). */
export function details(record) {
  try {
    const value = JSON.parse(record.details || '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch (_) {
    return {};
  }
}

/** The action in words when the console knows it, e.g. "预约会诊"; else its dotted name. */
export function actionLabel(action) {
  return has(`action.${action}`) ? t(`action.${action}`) : action;
}

/** `ok`/`denied`/… translated. */
export function outcomeLabel(outcome) {
  return tEnum(outcome);
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const sum = (list, key) => list.reduce((n, s) => n + (num(s[key]) || 0), 0);
const max = (list, key) => list.reduce((m, s) => (num(s[key]) === null ? m : Math.max(m === null ? -Infinity : m, s[key])), null);

/**
 * A participant's media quality from a `quality` object: packets received and lost
 * (and the loss share), the worst jitter, packets sent, the worst round-trip time.
 */
export function qualityFigures(quality) {
  const received = Array.isArray(quality.received_from_participant) ? quality.received_from_participant : [];
  const sent = Array.isArray(quality.sent_to_participant) ? quality.sent_to_participant : [];
  const seen = Array.isArray(quality.as_seen_by_participant) ? quality.as_seen_by_participant : [];
  const packets = sum(received, 'packets');
  const lost = Math.max(0, sum(received, 'packets_lost'));
  const expected = packets + lost;
  const jitter = max(received, 'jitter_s');
  const rtt = max(seen, 'round_trip_time_s');
  return {
    participant: quality.participant || '?',
    role: quality.role || '?',
    hasMedia: received.length > 0 || sent.length > 0 || seen.length > 0,
    packets,
    lost,
    lossPercent: expected > 0 ? (100 * lost) / expected : 0,
    jitterMs: jitter === null ? null : jitter * 1000,
    sentPackets: sum(sent, 'packets'),
    bytesReceived: sum(received, 'bytes'),
    bytesSent: sum(sent, 'bytes'),
    rttMs: rtt === null ? null : rtt * 1000,
  };
}

/** One line of quality figures. */
export function qualityLine(quality) {
  const q = qualityFigures(quality);
  if (!q.hasMedia) return t('quality.noMedia', { participant: q.participant, role: sessionRole(q.role) });
  const parts = [t('quality.received', { packets: q.packets, lost: q.lost, share: q.lossPercent.toFixed(1) })];
  if (q.jitterMs !== null) parts.push(t('quality.jitter', { ms: q.jitterMs.toFixed(1) }));
  parts.push(t('quality.sent', { packets: q.sentPackets }));
  if (q.rttMs !== null) parts.push(t('quality.rtt', { ms: q.rttMs.toFixed(0) }));
  return `${q.participant} (${sessionRole(q.role)}): ${parts.join('; ')}`;
}

// Words the broker's records use, translated when the console knows them.
function stateWord(value) {
  const name = `CONSULTATION_STATE_${String(value).toUpperCase()}`;
  return has(`enum.${name}`) ? tEnum(name) : value;
}
function enumWord(prefix, value) {
  const name = `${prefix}${String(value).toUpperCase()}`;
  return has(`enum.${name}`) ? tEnum(name) : value;
}
function sessionRole(value) {
  return has(`sessionRole.${value}`) ? t(`sessionRole.${value}`) : value;
}

const text = (d, key) => (d[key] === undefined || d[key] === null ? '' : typeof d[key] === 'string' ? d[key] : JSON.stringify(d[key]));

/** What a record's details say, in a few words. */
export function summary(record) {
  const d = details(record);
  if (record.outcome !== 'OUTCOME_OK') {
    return d.reason ? text(d, 'reason') : record.details;
  }
  const verb = record.action.split('.').pop();
  const transition = d.from && d.to && d.from !== d.to ? `${stateWord(text(d, 'from'))} → ${stateWord(text(d, 'to'))}` : '';
  const parts = [];
  let shown = ['from', 'to', 'version'];
  switch (record.action) {
    case 'session.quality':
      if (d.quality) parts.push((d.final ? `${t('quality.final')}: ` : '') + qualityLine(d.quality));
      shown = ['final', 'quality'];
      break;
    case 'session.leave':
      parts.push(d.reason ? t('timeline.leftBecause', { reason: text(d, 'reason') }) : t('timeline.left'));
      if (d.quality) parts.push(qualityLine(d.quality));
      shown = ['reason', 'quality'];
      break;
    case 'session.join':
      parts.push(t(d.reconnect ? 'timeline.rejoined' : 'timeline.joined', { role: sessionRole(text(d, 'role')) }));
      shown = ['role', 'reconnect'];
      break;
    case 'session.ice_state':
      parts.push(t('timeline.ice', { participant: text(d, 'participant'), state: text(d, 'state') }));
      shown = ['participant', 'state'];
      break;
    default:
      if (verb === 'record_consent') {
        parts.push(t('timeline.consent', {
          consenter: enumWord('CONSENTER_', text(d, 'consenter')),
          method: enumWord('METHOD_', text(d, 'method')),
        }));
        shown = ['consenter', 'method', 'from', 'to', 'version'];
      } else if (verb === 'sign_opinion') {
        parts.push(t('timeline.signed', { version: text(d, 'version'), hash: text(d, 'content_hash') }));
        if (transition) parts.push(transition);
        shown = ['version', 'content_hash', 'from', 'to', 'supersedes'];
      } else if (verb === 'file_opinion') {
        parts.push(t('timeline.drafted', { version: text(d, 'version') }));
        shown = ['version', 'draft_hash', 'supersedes'];
      } else if (verb === 'book_consultation') {
        parts.push(t('timeline.booked', { doctor: text(d, 'doctor') || '—', window: text(d, 'window') }));
        if (d.state) parts.push(stateWord(text(d, 'state')));
        shown = ['doctor', 'consulting_institution', 'specialty', 'window', 'state'];
      } else if (transition) {
        parts.push(transition);
      }
  }
  const rest = Object.entries(d)
    .filter(([k, v]) => !shown.includes(k) && v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (rest.length) parts.push(rest.join(', '));
  return parts.join('; ');
}

/** A <details> showing the raw details JSON, pretty-printed. */
export function rawDetails(record) {
  let pretty = record.details;
  try {
    pretty = JSON.stringify(JSON.parse(record.details), null, 2);
  } catch (_) {
    // shown as it is
  }
  return h('details', { class: 'raw' }, h('summary', {}, t('audit.rawDetails')), h('pre', {}, pretty));
}
