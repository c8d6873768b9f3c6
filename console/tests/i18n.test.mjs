// Every key the console uses exists in both languages, and both languages have the
// same keys. Run with: node --test console/tests/

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import { DICTIONARIES, t, tEnum, setLanguage, getLanguage } from '../js/i18n.js';

const jsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'js');

const AUDIT_ACTIONS = new Set(['audit.checkpoint', 'audit.verify', 'audit.query', 'audit.timeline', 'audit.export']);

function sources() {
  const files = [];
  for (const dir of [jsDir, join(jsDir, 'pages'), join(jsDir, 'room')]) {
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.js') && name !== 'i18n.js') files.push(join(dir, name));
    }
  }
  return files.map((f) => ({ file: f, text: readFileSync(f, 'utf8') }));
}

test('both languages have the same keys', () => {
  const zh = Object.keys(DICTIONARIES.zh).sort();
  const en = Object.keys(DICTIONARIES.en).sort();
  assert.deepEqual(zh.filter((k) => !en.includes(k)), [], 'keys missing in English');
  assert.deepEqual(en.filter((k) => !zh.includes(k)), [], 'keys missing in Chinese');
});

test('every literal key used in the code is translated', () => {
  // A key is a quoted 'namespace.rest' whose namespace the dictionaries use.
  const namespaces = new Set(Object.keys(DICTIONARIES.zh).map((k) => k.split('.')[0]));
  const missing = [];
  for (const { file, text } of sources()) {
    for (const m of text.matchAll(/'([a-z][A-Za-z]*\.[A-Za-z0-9_.-]+)'/g)) {
      const key = m[1];
      const ns = key.split('.')[0];
      if (!namespaces.has(ns) || key.endsWith('.js')) continue;
      // Audit action names look like keys but are not.
      if (/^(scheduling|session|account|directory)\./.test(key) || AUDIT_ACTIONS.has(key)) continue;
      if (!(key in DICTIONARIES.zh)) missing.push(`${key} (${file.split('/js/')[1]})`);
    }
  }
  assert.deepEqual(missing, []);
});

test('placeholders are the same in both languages', () => {
  const names = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
  const differ = Object.keys(DICTIONARIES.zh).filter((k) => names(DICTIONARIES.zh[k]) !== names(DICTIONARIES.en[k]));
  assert.deepEqual(differ, []);
});

test('t fills placeholders and tEnum translates enum names', () => {
  setLanguage('en');
  assert.equal(getLanguage(), 'en');
  assert.equal(t('verify.broken', { seq: 42 }), 'The audit chain is broken at record 42!');
  assert.equal(tEnum('ROLE_DOCTOR'), 'Specialist');
  assert.equal(tEnum('SOMETHING_NEW'), 'SOMETHING_NEW');
  assert.equal(tEnum(7), '7');
  setLanguage('zh');
  assert.equal(tEnum('CONSULTATION_STATE_SCHEDULED'), '已安排');
  assert.equal(t('no.such.key'), 'no.such.key');
});
