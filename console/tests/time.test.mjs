// Times are shown and read in Asia/Shanghai whatever the machine's zone.
// Run with: node --test console/tests/

import test from 'node:test';
import assert from 'node:assert/strict';

import * as time from '../js/time.js';

test('Shanghai dates and times become the right instants (UTC+8, no DST)', () => {
  assert.equal(time.fromLocal('2026-12-01', '09:00').toISOString(), '2026-12-01T01:00:00.000Z');
  assert.equal(time.fromLocal('2026-07-01', '00:30').toISOString(), '2026-06-30T16:30:00.000Z');
  assert.equal(time.fromLocalInput('2026-03-29T02:30').toISOString(), '2026-03-28T18:30:00.000Z');
  assert.equal(time.fromLocal('2026-02-31', '09:00'), null);
  assert.equal(time.fromLocal('2026-12-01', '24:00'), null);
  assert.equal(time.fromLocal('', '09:00'), null);
});

test('instants read back as Shanghai wall-clock time', () => {
  const p = time.localParts(new Date('2026-11-30T20:15:00Z'));
  assert.deepEqual(p, { date: '2026-12-01', time: '04:15', weekday: 2, minutes: 255 });
  assert.equal(time.toLocalInput({ seconds: Date.UTC(2026, 11, 1, 1, 0) / 1000, nanos: 0 }), '2026-12-01T09:00');
  assert.equal(time.weekdayOf('2026-12-06'), 7);
  assert.equal(time.weekdayOf('2026-12-07'), 1);
});

test('formatting uses the Shanghai zone in both languages', () => {
  const ts = { seconds: Date.UTC(2026, 11, 1, 1, 5, 9) / 1000, nanos: 0 };
  time.setTimeLanguage('en');
  assert.match(time.formatDateTime(ts), /01\/12\/2026,? 09:05/);
  assert.match(time.formatDateTimeSeconds(ts), /09:05:09/);
  assert.equal(time.formatTime(ts), '09:05');
  time.setTimeLanguage('zh');
  assert.match(time.formatDateTime(ts), /2026\/12\/01 09:05/);
  assert.equal(time.formatDateTime(null), '—');
  assert.equal(time.formatDateTime({ seconds: 0, nanos: 0 }), '—');
});

test('Timestamps and Dates convert both ways', () => {
  assert.deepEqual(time.toTimestamp(new Date(1700000000123)), { seconds: 1700000000, nanos: 123000000 });
  assert.equal(time.fromTimestamp({ seconds: 1700000000, nanos: 123000000 }).getTime(), 1700000000123);
  assert.equal(time.fromTimestamp({ seconds: '1700000000', nanos: 0 }).getTime(), 1700000000000);
  assert.equal(time.fromTimestamp(null), null);
});

test('day ranges and minutes', () => {
  const r = time.dayRange('2026-12-01');
  assert.equal(r.start.toISOString(), '2026-11-30T16:00:00.000Z');
  assert.equal(r.end.toISOString(), '2026-12-01T16:00:00.000Z');
  assert.equal(time.minutesToText(570), '09:30');
  assert.equal(time.minutesToText(1500), '01:00');
  assert.equal(time.textToMinutes('09:30'), 570);
  assert.equal(time.textToMinutes('9:30'), null);
  time.setTimeLanguage('en');
  assert.equal(time.formatDuration(3725), '1 h 02 min');
  assert.equal(time.formatDuration(75), '1 min 15 s');
  time.setTimeLanguage('zh');
  assert.equal(time.formatDuration(75), '1分15秒');
});
