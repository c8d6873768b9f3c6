// A gRPC-Web client (application/grpc-web+proto) over fetch.
//
// A request is one frame: flag 0x00, a 4-byte big-endian length, the message. The
// response body is a sequence of such frames, message frames (flag 0x00) and finally
// a trailers frame (flag 0x80) whose text carries grpc-status and grpc-message. An
// error without messages may come "trailers-only": the status in the HTTP headers.
// The session is an HttpOnly cookie, so every call goes with credentials.

import { loadSchema, methodInfo, encode, decode } from './proto.js';

export const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION',
  'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

export const Code = Object.freeze(Object.fromEntries(CODE_NAMES.map((name, i) => [name, i])));

export class GrpcError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'GrpcError';
    this.code = code;
    this.codeName = CODE_NAMES[code] || 'UNKNOWN';
    this.message = message;
  }
}

// Calls that are expected to answer UNAUTHENTICATED without the session being over.
const SIGN_IN_METHODS = new Set([
  'teleconsult.v1.AccountService/SignIn',
  'teleconsult.v1.AccountService/Enroll',
]);

const unauthenticatedListeners = new Set();

/** Calls `callback(error)` whenever a call fails with UNAUTHENTICATED (except sign-in). */
export function onUnauthenticated(callback) {
  unauthenticatedListeners.add(callback);
  return () => unauthenticatedListeners.delete(callback);
}

function notify(path, error) {
  if (error instanceof GrpcError && error.code === Code.UNAUTHENTICATED && !SIGN_IN_METHODS.has(path)) {
    for (const listener of unauthenticatedListeners) {
      try {
        listener(error);
      } catch (e) {
        console.error('onUnauthenticated listener failed', e);
      }
    }
  }
  return error;
}

/** grpc-message is percent-encoded UTF-8. */
export function percentDecode(text) {
  if (!text) return '';
  try {
    return decodeURIComponent(text);
  } catch (_) {
    return text;
  }
}

/** The gRPC-Web frame of one message. */
export function frame(bytes, flag = 0x00) {
  const out = new Uint8Array(5 + bytes.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, bytes.length, false);
  out.set(bytes, 5);
  return out;
}

/** `name: value\r\n` lines as a Map of lowercase names. */
export function parseTrailers(text) {
  const trailers = new Map();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return trailers;
}

// The status an HTTP error maps to when the answer carries no gRPC status, as the
// gRPC specification's HTTP-to-gRPC table says.
function httpStatusCode(status) {
  switch (status) {
    case 400: return Code.INTERNAL;
    case 401: return Code.UNAUTHENTICATED;
    case 403: return Code.PERMISSION_DENIED;
    case 404: return Code.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return Code.UNAVAILABLE;
    default: return Code.UNKNOWN;
  }
}

function statusError(statusText, messageText) {
  const code = Number.parseInt(statusText, 10);
  if (!Number.isInteger(code)) return new GrpcError(Code.UNKNOWN, `invalid grpc-status ${statusText}`);
  if (code === Code.OK) return null;
  return new GrpcError(code, percentDecode(messageText || ''));
}

// Splits a byte stream into frames, whichever way it was chunked.
class FrameReader {
  constructor() {
    this.buffer = new Uint8Array(0);
  }

  push(chunk) {
    if (this.buffer.length === 0) {
      this.buffer = chunk;
    } else {
      const joined = new Uint8Array(this.buffer.length + chunk.length);
      joined.set(this.buffer);
      joined.set(chunk, this.buffer.length);
      this.buffer = joined;
    }
  }

  // The next complete frame as { flag, data }, or null until more bytes arrive.
  next() {
    if (this.buffer.length < 5) return null;
    const length = new DataView(this.buffer.buffer, this.buffer.byteOffset, 5).getUint32(1, false);
    if (this.buffer.length < 5 + length) return null;
    const flag = this.buffer[0];
    const data = this.buffer.slice(5, 5 + length);
    this.buffer = this.buffer.subarray(5 + length);
    return { flag, data };
  }

  get pending() {
    return this.buffer.length;
  }
}

function abortError() {
  return new DOMException('The call was aborted', 'AbortError');
}

// Makes the call and hands every response message to `onMessage`; resolves when the
// server ends the call with OK.
async function call(service, method, request, { onMessage, signal, onOpen } = {}) {
  const path = `${service}/${method}`;
  await loadSchema();
  const info = methodInfo(service, method);
  if (!info) throw new GrpcError(Code.UNIMPLEMENTED, `the schema has no method ${path}`);

  let body;
  try {
    body = frame(encode(info.input, request || {}));
  } catch (e) {
    throw new GrpcError(Code.INVALID_ARGUMENT, `could not encode the request: ${e.message}`);
  }

  let response;
  try {
    response = await fetch(`/${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/grpc-web+proto',
        'x-grpc-web': '1',
        accept: 'application/grpc-web+proto',
      },
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (signal && signal.aborted) throw abortError();
    throw new GrpcError(Code.UNAVAILABLE, `the broker could not be reached (${e.message})`);
  }

  const headerStatus = response.headers.get('grpc-status');
  const headerMessage = response.headers.get('grpc-message');
  if (!response.ok && headerStatus === null) {
    if (response.body) response.body.cancel().catch(() => {});
    throw new GrpcError(httpStatusCode(response.status), `HTTP ${response.status} ${response.statusText}`.trim());
  }
  // A trailers-only answer: the status is in the headers and there is no body to read.
  if (headerStatus !== null && headerStatus !== '0') {
    if (response.body) response.body.cancel().catch(() => {});
    throw statusError(headerStatus, headerMessage);
  }
  if (!response.body) {
    if (headerStatus === '0') return;
    throw new GrpcError(Code.INTERNAL, 'the answer has no body');
  }

  if (onOpen) onOpen();
  const reader = response.body.getReader();
  const frames = new FrameReader();
  let trailers = null;
  let done = false;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal && signal.aborted) throw abortError();
        throw new GrpcError(Code.UNAVAILABLE, `the connection to the broker was lost (${e.message})`);
      }
      if (chunk.done) {
        done = true;
        break;
      }
      frames.push(chunk.value);
      for (let f = frames.next(); f; f = frames.next()) {
        if (f.flag & 0x80) {
          trailers = parseTrailers(new TextDecoder().decode(f.data));
        } else if (f.flag & 0x01) {
          throw new GrpcError(Code.INTERNAL, 'compressed messages are not supported');
        } else if (trailers === null) {
          let message;
          try {
            message = decode(info.output, f.data);
          } catch (e) {
            throw new GrpcError(Code.INTERNAL, `could not decode the answer: ${e.message}`);
          }
          if (onMessage) {
            try {
              onMessage(message);
            } catch (e) {
              // A failing handler must not end the call for everyone else.
              console.error(`${path}: onMessage failed`, e);
            }
          }
        }
      }
    }
  } finally {
    if (done) reader.releaseLock();
    else reader.cancel().catch(() => {});
  }
  if (signal && signal.aborted) throw abortError();
  if (frames.pending) throw new GrpcError(Code.INTERNAL, 'the answer ended inside a frame');
  if (trailers && trailers.has('grpc-status')) {
    const error = statusError(trailers.get('grpc-status'), trailers.get('grpc-message'));
    if (error) throw error;
    return;
  }
  if (headerStatus === '0') return;
  throw new GrpcError(Code.UNAVAILABLE, 'the answer ended without a status');
}

/** One request, one response: resolves to the decoded response; rejects with GrpcError. */
export async function unary(service, method, request, { signal } = {}) {
  const path = `${service}/${method}`;
  let result;
  let count = 0;
  try {
    await call(service, method, request, {
      signal,
      onMessage: (message) => {
        count += 1;
        if (count === 1) result = message;
      },
    });
  } catch (e) {
    throw notify(path, e);
  }
  if (count > 1) throw new GrpcError(Code.INTERNAL, `${path} answered with ${count} messages`);
  if (count === 0) {
    // An empty message may arrive as no frame at all; decode it as such.
    const info = methodInfo(service, method);
    return decode(info.output, new Uint8Array(0));
  }
  return result;
}

/**
 * A server stream: calls `onMessage(decoded)` per message; resolves when the stream
 * ends with OK, rejects with GrpcError (or an AbortError when `signal` aborts).
 * `onOpen` (optional) is called once the broker has answered with its headers, that
 * is once the call has been accepted and is running.
 */
export async function serverStream(service, method, request, { onMessage, signal, onOpen } = {}) {
  const path = `${service}/${method}`;
  try {
    await call(service, method, request, { signal, onMessage, onOpen });
  } catch (e) {
    throw notify(path, e);
  }
}
