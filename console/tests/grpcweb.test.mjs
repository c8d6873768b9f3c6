// The gRPC-Web client against a fake fetch: framing, chunking, trailers, errors.
// Run with: node --test console/tests/

import test from 'node:test';
import assert from 'node:assert/strict';

import { useSchema, encode, decode } from '../js/proto.js';
import { unary, serverStream, onUnauthenticated, GrpcError, frame, percentDecode } from '../js/grpcweb.js';

const f = (name, number, type, extra = {}) => ({ name, number, type, repeated: false, type_name: null, oneof: null, ...extra });

useSchema({
  messages: {
    'teleconsult.v1.SignInRequest': { fields: [f('user_id', 1, 'string'), f('password', 2, 'string')], map_entry: false },
    'teleconsult.v1.Empty': { fields: [], map_entry: false },
    'teleconsult.v1.Note': { fields: [f('text', 1, 'string'), f('n', 2, 'uint64')], map_entry: false },
  },
  enums: {},
  services: {
    'teleconsult.v1.AccountService': {
      SignIn: { input: 'teleconsult.v1.SignInRequest', output: 'teleconsult.v1.Note', client_streaming: false, server_streaming: false },
    },
    'teleconsult.v1.NoteService': {
      Get: { input: 'teleconsult.v1.Empty', output: 'teleconsult.v1.Note', client_streaming: false, server_streaming: false },
      Watch: { input: 'teleconsult.v1.Empty', output: 'teleconsult.v1.Note', client_streaming: false, server_streaming: true },
    },
  },
});

const text = (s) => new TextEncoder().encode(s);
const message = (obj) => frame(encode('teleconsult.v1.Note', obj));
const trailers = (status, msg) => frame(text(`grpc-status: ${status}\r\n${msg ? `grpc-message: ${msg}\r\n` : ''}`), 0x80);

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// A fake fetch answering with `bytes` cut into `chunkSize` pieces.
function answer(bytes, { status = 200, headers = {}, chunkSize = 3 } = {}) {
  const calls = [];
  globalThis.fetch = async (url, init) => {
    calls.push({ url, init });
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += chunkSize) controller.enqueue(bytes.slice(i, i + chunkSize));
        controller.close();
      },
    });
    return new Response(bytes.length ? body : null, { status, headers: { 'content-type': 'application/grpc-web+proto', ...headers } });
  };
  return calls;
}

test('unary frames the request and decodes the answer across chunk boundaries', async () => {
  const calls = answer(concat(message({ text: '会诊', n: 5 }), trailers(0)), { chunkSize: 1 });
  const r = await unary('teleconsult.v1.NoteService', 'Get', {});
  assert.deepEqual(r, { text: '会诊', n: 5 });
  assert.equal(calls[0].url, '/teleconsult.v1.NoteService/Get');
  const init = calls[0].init;
  assert.equal(init.method, 'POST');
  assert.equal(init.credentials, 'same-origin');
  assert.equal(init.headers['content-type'], 'application/grpc-web+proto');
  assert.equal(init.headers['x-grpc-web'], '1');
  assert.deepEqual(Array.from(init.body), [0, 0, 0, 0, 0]);
});

test('the request body is one frame with a big-endian length', async () => {
  const calls = answer(concat(message({}), trailers(0)));
  await unary('teleconsult.v1.AccountService', 'SignIn', { user_id: 'a', password: 'b' });
  assert.deepEqual(Array.from(calls[0].init.body), [0, 0, 0, 0, 6, 0x0a, 1, 0x61, 0x12, 1, 0x62]);
});

test('an error in the trailers is a GrpcError with the percent-decoded message', async () => {
  answer(concat(trailers(7, 'only%20the%20assigned%20doctor%3A%20%E9%99%88')));
  await assert.rejects(unary('teleconsult.v1.NoteService', 'Get', {}), (e) => {
    assert.ok(e instanceof GrpcError);
    assert.equal(e.code, 7);
    assert.equal(e.codeName, 'PERMISSION_DENIED');
    assert.equal(e.message, 'only the assigned doctor: 陈');
    return true;
  });
});

test('a trailers-only error in the HTTP headers', async () => {
  answer(new Uint8Array(0), { headers: { 'grpc-status': '5', 'grpc-message': 'no%20such%20consultation' } });
  await assert.rejects(unary('teleconsult.v1.NoteService', 'Get', {}), { code: 5, codeName: 'NOT_FOUND', message: 'no such consultation' });
});

test('an HTTP error without a gRPC status maps to a gRPC code', async () => {
  answer(new Uint8Array(0), { status: 503 });
  await assert.rejects(unary('teleconsult.v1.NoteService', 'Get', {}), { codeName: 'UNAVAILABLE' });
});

test('a body that ends without trailers is an error', async () => {
  answer(message({ text: 'x' }));
  await assert.rejects(unary('teleconsult.v1.NoteService', 'Get', {}), { codeName: 'UNAVAILABLE' });
});

test('UNAUTHENTICATED is reported, except for sign-in', async () => {
  const seen = [];
  const off = onUnauthenticated((e) => seen.push(e.code));
  answer(trailers(16, 'session%20expired'));
  await assert.rejects(unary('teleconsult.v1.NoteService', 'Get', {}), { code: 16 });
  answer(trailers(16, 'wrong'));
  await assert.rejects(unary('teleconsult.v1.AccountService', 'SignIn', {}), { code: 16 });
  off();
  assert.deepEqual(seen, [16]);
});

test('serverStream hands over each message, then resolves on OK', async () => {
  answer(concat(message({ text: 'a' }), message({ text: 'b', n: '18446744073709551615' }), trailers(0)), { chunkSize: 4 });
  const got = [];
  let opened = 0;
  await serverStream('teleconsult.v1.NoteService', 'Watch', {}, { onMessage: (m) => got.push(m), onOpen: () => { opened += 1; } });
  assert.deepEqual(got, [{ text: 'a', n: 0 }, { text: 'b', n: '18446744073709551615' }]);
  assert.equal(opened, 1);
});

test('serverStream rejects with the status that ends the stream', async () => {
  answer(concat(message({ text: 'a' }), trailers(8, 'fell%20behind')));
  const got = [];
  await assert.rejects(serverStream('teleconsult.v1.NoteService', 'Watch', {}, { onMessage: (m) => got.push(m) }),
    { codeName: 'RESOURCE_EXHAUSTED', message: 'fell behind' });
  assert.equal(got.length, 1);
});

test('an aborted stream rejects with AbortError', async () => {
  globalThis.fetch = async (url, init) => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(message({ text: 'a' }));
        init.signal.addEventListener('abort', () => controller.error(new DOMException('aborted', 'AbortError')));
      },
    });
    return new Response(body, { status: 200 });
  };
  const controller = new AbortController();
  const done = serverStream('teleconsult.v1.NoteService', 'Watch', {}, {
    signal: controller.signal,
    onMessage: () => controller.abort(),
  });
  await assert.rejects(done, { name: 'AbortError' });
});

test('percent-decoding tolerates bad escapes', () => {
  assert.equal(percentDecode('100%'), '100%');
  assert.equal(percentDecode(''), '');
  assert.equal(decode('teleconsult.v1.Note', new Uint8Array(0)).text, '');
});
