// Unit tests of the protobuf codec against hand-computed byte vectors.
// Run with: node --test console/tests/

import test from 'node:test';
import assert from 'node:assert/strict';

import { useSchema, encode, decode, enumNames, methodInfo } from '../js/proto.js';

const f = (name, number, type, extra = {}) => ({
  name, number, type, repeated: false, type_name: null, oneof: null, ...extra,
});

// The same format as the broker's /schema.json.
const SCHEMA = {
  messages: {
    'test.Scalars': {
      fields: [
        f('i32', 1, 'int32'), f('i64', 2, 'int64'), f('u32', 3, 'uint32'), f('u64', 4, 'uint64'),
        f('s32', 5, 'sint32'), f('s64', 6, 'sint64'), f('f32', 7, 'fixed32'), f('f64', 8, 'fixed64'),
        f('sf32', 9, 'sfixed32'), f('sf64', 10, 'sfixed64'), f('b', 11, 'bool'), f('s', 12, 'string'),
        f('by', 13, 'bytes'), f('d', 14, 'double'), f('fl', 15, 'float'),
        f('e', 16, 'enum', { type_name: 'test.Color' }),
      ],
      map_entry: false,
    },
    'test.Inner': {
      fields: [f('id', 1, 'uint32'), f('note', 2, 'string')],
      map_entry: false,
    },
    'test.Outer': {
      fields: [
        f('name', 1, 'string'),
        f('inner', 2, 'message', { type_name: 'test.Inner' }),
        f('items', 3, 'message', { type_name: 'test.Inner', repeated: true }),
        f('nums', 4, 'int32', { repeated: true }),
        f('tags', 5, 'string', { repeated: true }),
        f('colors', 6, 'enum', { type_name: 'test.Color', repeated: true }),
        f('when', 7, 'message', { type_name: 'google.protobuf.Timestamp' }),
        f('text', 8, 'string', { oneof: 'choice' }),
        f('count', 9, 'int32', { oneof: 'choice' }),
        f('child', 10, 'message', { type_name: 'test.Inner', oneof: 'choice' }),
        f('opt', 11, 'string', { oneof: '_opt' }),
        f('labels', 12, 'message', { type_name: 'test.Outer.LabelsEntry', repeated: true }),
        f('big', 13, 'uint64', { repeated: true }),
      ],
      map_entry: false,
    },
    'test.Outer.LabelsEntry': {
      fields: [f('key', 1, 'string'), f('value', 2, 'int32')],
      map_entry: true,
    },
    'google.protobuf.Timestamp': {
      fields: [f('seconds', 1, 'int64'), f('nanos', 2, 'int32')],
      map_entry: false,
    },
  },
  enums: {
    'test.Color': { COLOR_UNSPECIFIED: 0, COLOR_RED: 1, COLOR_GREEN: 2 },
  },
  services: {
    'test.Svc': {
      Get: { input: 'test.Inner', output: 'test.Outer', client_streaming: false, server_streaming: false },
    },
  },
};

useSchema(SCHEMA);

const hex = (s) => Uint8Array.from(s.trim().split(/\s+/).filter(Boolean).map((b) => parseInt(b, 16)));
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
const assertBytes = (actual, expected) => assert.equal(toHex(actual), toHex(hex(expected)));

// Checks both directions: `obj` encodes to `bytes`, and `bytes` decode to what `obj`
// says (plus the defaults of the fields it leaves out).
function vector(type, obj, bytes, decoded = obj) {
  assertBytes(encode(type, obj), bytes);
  const back = decode(type, hex(bytes));
  for (const [k, v] of Object.entries(decoded)) assert.deepEqual(back[k], v, `field ${k}`);
}

test('varints: int32 and uint32', () => {
  vector('test.Scalars', { i32: 1 }, '08 01');
  vector('test.Scalars', { i32: 150 }, '08 96 01');
  vector('test.Scalars', { i32: 2147483647 }, '08 ff ff ff ff 07');
  vector('test.Scalars', { u32: 4294967295 }, '18 ff ff ff ff 0f');
  vector('test.Scalars', { u32: 300 }, '18 ac 02');
});

test('negative int32 is sign-extended to ten bytes', () => {
  vector('test.Scalars', { i32: -1 }, '08 ff ff ff ff ff ff ff ff ff 01');
  vector('test.Scalars', { i32: -2 }, '08 fe ff ff ff ff ff ff ff ff 01');
  vector('test.Scalars', { i32: -2147483648 }, '08 80 80 80 80 f8 ff ff ff ff 01');
});

test('zigzag sint32 and sint64', () => {
  vector('test.Scalars', { s32: -1 }, '28 01');
  vector('test.Scalars', { s32: 1 }, '28 02');
  vector('test.Scalars', { s32: -64 }, '28 7f');
  vector('test.Scalars', { s32: 2147483647 }, '28 fe ff ff ff 0f');
  vector('test.Scalars', { s32: -2147483648 }, '28 ff ff ff ff 0f');
  vector('test.Scalars', { s64: -1 }, '30 01');
  vector('test.Scalars', { s64: '-9223372036854775808' }, '30 ff ff ff ff ff ff ff ff ff 01');
  vector('test.Scalars', { s64: '9223372036854775807' }, '30 fe ff ff ff ff ff ff ff ff 01');
});

test('64-bit integers: safe ones are Numbers, others decimal strings', () => {
  vector('test.Scalars', { i64: 1700000000 }, '10 80 e2 cf aa 06');
  // 2^53 + 1 is not a safe integer.
  vector('test.Scalars', { i64: '9007199254740993' }, '10 81 80 80 80 80 80 80 10');
  vector('test.Scalars', { i64: -1 }, '10 ff ff ff ff ff ff ff ff ff 01');
  vector('test.Scalars', { u64: '18446744073709551615' }, '20 ff ff ff ff ff ff ff ff ff 01');
  // Encoding also takes BigInt and numeric strings.
  assertBytes(encode('test.Scalars', { i64: 9007199254740993n }), '10 81 80 80 80 80 80 80 10');
  assertBytes(encode('test.Scalars', { u64: '150' }), '20 96 01');
  assert.equal(decode('test.Scalars', hex('20 96 01')).u64, 150);
});

test('fixed-width integers and floating point', () => {
  vector('test.Scalars', { f32: 1 }, '3d 01 00 00 00');
  vector('test.Scalars', { f32: 4294967295 }, '3d ff ff ff ff');
  vector('test.Scalars', { f64: 1 }, '41 01 00 00 00 00 00 00 00');
  vector('test.Scalars', { f64: '18446744073709551615' }, '41 ff ff ff ff ff ff ff ff');
  vector('test.Scalars', { sf32: -2 }, '4d fe ff ff ff');
  vector('test.Scalars', { sf64: -2 }, '51 fe ff ff ff ff ff ff ff');
  vector('test.Scalars', { d: 1.5 }, '71 00 00 00 00 00 00 f8 3f');
  vector('test.Scalars', { fl: 1.5 }, '7d 00 00 c0 3f');
});

test('bool, strings with Chinese and Tibetan context, bytes', () => {
  vector('test.Scalars', { b: true }, '58 01');
  vector('test.Scalars', { s: '会诊' }, '62 06 e4 bc 9a e8 af 8a');
  vector('test.Scalars', { s: '藏医' }, '62 06 e8 97 8f e5 8c bb');
  vector('test.Scalars', { by: new Uint8Array([1, 2, 3]) }, '6a 03 01 02 03');
});

test('enums encode from names or numbers and decode to names', () => {
  vector('test.Scalars', { e: 'COLOR_GREEN' }, '80 01 02');
  assertBytes(encode('test.Scalars', { e: 2 }), '80 01 02');
  // An unknown number stays a number.
  assert.equal(decode('test.Scalars', hex('80 01 07')).e, 7);
  assert.throws(() => encode('test.Scalars', { e: 'COLOR_PURPLE' }), /not a value of test.Color/);
  assert.deepEqual(enumNames('test.Color'), ['COLOR_UNSPECIFIED', 'COLOR_RED', 'COLOR_GREEN']);
});

test('proto3 defaults are not encoded and are filled in on decode', () => {
  const obj = { i32: 0, i64: '0', u64: 0n, s: '', b: false, e: 'COLOR_UNSPECIFIED', d: 0, by: new Uint8Array(0) };
  assert.equal(encode('test.Scalars', obj).length, 0);
  const empty = decode('test.Scalars', new Uint8Array(0));
  assert.deepEqual({ ...empty, by: Array.from(empty.by) }, {
    i32: 0, i64: 0, u32: 0, u64: 0, s32: 0, s64: 0, f32: 0, f64: 0, sf32: 0, sf64: 0,
    b: false, s: '', by: [], d: 0, fl: 0, e: 'COLOR_UNSPECIFIED',
  });
  assert.deepEqual(decode('test.Outer', new Uint8Array(0)), {
    name: '', inner: null, items: [], nums: [], tags: [], colors: [], when: null, labels: {}, big: [],
  });
});

test('nested messages, present even when empty', () => {
  vector('test.Outer', { name: 'a', inner: { id: 1, note: 'x' } }, '0a 01 61 12 05 08 01 12 01 78');
  vector('test.Outer', { inner: {} }, '12 00', { inner: { id: 0, note: '' } });
  // A message field that occurs twice is merged.
  assert.deepEqual(decode('test.Outer', hex('12 02 08 01 12 03 12 01 78')).inner, { id: 1, note: 'x' });
});

test('repeated fields: scalars packed on encode; packed and unpacked decode', () => {
  vector('test.Outer', { nums: [1, 150, -1] }, '22 0d 01 96 01 ff ff ff ff ff ff ff ff ff 01');
  assert.deepEqual(decode('test.Outer', hex('20 01 20 96 01')).nums, [1, 150]);
  // Both forms may be mixed in one message.
  assert.deepEqual(decode('test.Outer', hex('20 01 22 02 02 03 20 04')).nums, [1, 2, 3, 4]);
  vector('test.Outer', { tags: ['a', 'b'] }, '2a 01 61 2a 01 62');
  vector('test.Outer', { colors: ['COLOR_RED', 'COLOR_GREEN'] }, '32 02 01 02');
  vector('test.Outer', { items: [{ id: 1 }, { id: 2 }] }, '1a 02 08 01 1a 02 08 02',
    { items: [{ id: 1, note: '' }, { id: 2, note: '' }] });
  vector('test.Outer', { big: [1, '18446744073709551615'] }, '6a 0b 01 ff ff ff ff ff ff ff ff ff 01');
  // Empty repeated fields are not encoded.
  assert.equal(encode('test.Outer', { nums: [], tags: [], items: [] }).length, 0);
});

test('google.protobuf.Timestamp is an ordinary message', () => {
  vector('test.Outer', { when: { seconds: 1700000000, nanos: 5 } }, '3a 08 08 80 e2 cf aa 06 10 05');
});

test('oneofs: set member always encoded, only it decoded, last one wins', () => {
  vector('test.Outer', { count: 0 }, '48 00');
  const decoded = decode('test.Outer', hex('48 00'));
  assert.equal(decoded.count, 0);
  assert.ok(!('text' in decoded) && !('child' in decoded));
  const last = decode('test.Outer', hex('42 01 61 48 05'));
  assert.deepEqual([last.text, last.count], [undefined, 5]);
  assert.ok(!('text' in last));
  vector('test.Outer', { child: {} }, '52 00', { child: { id: 0, note: '' } });
  assert.throws(() => encode('test.Outer', { text: 'a', count: 1 }), /oneof choice/);
});

test('proto3 optional fields have presence', () => {
  vector('test.Outer', { opt: '' }, '5a 00');
  assert.ok(!('opt' in decode('test.Outer', new Uint8Array(0))));
  assert.equal(decode('test.Outer', hex('5a 01 7a')).opt, 'z');
});

test('map fields decode to plain objects', () => {
  vector('test.Outer', { labels: { a: 1 } }, '62 05 0a 01 61 10 01');
  assert.deepEqual(decode('test.Outer', hex('62 05 0a 01 61 10 01 62 05 0a 01 62 10 02')).labels, { a: 1, b: 2 });
});

test('unknown fields of every wire type are skipped', () => {
  const bytes = hex(`
    08 01
    78 05
    82 01 02 aa bb
    8d 01 00 00 00 00
    91 01 00 00 00 00 00 00 00 00
    9b 01 08 01 9c 01
    12 01 78`);
  assert.deepEqual(decode('test.Inner', bytes), { id: 1, note: 'x' });
  // A known field with a wire type the schema does not give it is skipped too.
  assert.deepEqual(decode('test.Inner', hex('0a 01 00 12 01 78')), { id: 0, note: 'x' });
});

test('malformed input is refused', () => {
  assert.throws(() => decode('test.Inner', hex('12 05 78')), /truncated/);
  assert.throws(() => decode('test.Inner', hex('08')), /truncated/);
  assert.throws(() => decode('test.Inner', hex('08 ff ff ff ff ff ff ff ff ff ff 01')), /varint/);
  assert.throws(() => decode('test.Inner', hex('0f')), /wire type/);
});

test('encoding refuses fields the schema does not have and wrong types', () => {
  assert.throws(() => encode('test.Inner', { id: 1, Note: 'x' }), /no field "Note"/);
  assert.throws(() => encode('test.Inner', { id: 1.5 }), /not an integer/);
  assert.throws(() => encode('test.Inner', { note: 5 }), /expected a string/);
  assert.throws(() => encode('test.Nope', {}), /unknown message/);
});

test('round trip of a full message', () => {
  const obj = {
    name: '那曲', inner: { id: 7, note: 'ok' }, items: [{ id: 1, note: '' }], nums: [-5, 0, 5],
    tags: ['x'], colors: ['COLOR_RED'], when: { seconds: -1, nanos: 999999999 }, text: 'hi',
    opt: 'o', labels: { k: -3 }, big: [0, 1],
  };
  assert.deepEqual(decode('test.Outer', encode('test.Outer', obj)), obj);
});

test('service methods come from the schema', () => {
  assert.deepEqual(methodInfo('test.Svc', 'Get').output, 'test.Outer');
  assert.equal(methodInfo('test.Svc', 'Nope'), null);
});
