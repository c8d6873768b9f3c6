// A proto3 binary codec driven by the schema the broker serves at /schema.json.
//
// Messages are plain objects keyed by the field names of the .proto (snake_case).
// Decoding fills every singular scalar with its default, repeated fields with [],
// absent message fields with null; of a oneof only the member that is set appears.
// Enums travel as their value names; 64-bit integers become Numbers while they are
// safe integers and decimal strings beyond that.

const SCALAR_DEFAULTS = {
  double: 0, float: 0, int32: 0, uint32: 0, sint32: 0, fixed32: 0, sfixed32: 0,
  int64: 0, uint64: 0, sint64: 0, fixed64: 0, sfixed64: 0,
  bool: false, string: '',
};

// The wire type each field type uses when it is not packed.
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_SGROUP = 3;
const WIRE_EGROUP = 4;
const WIRE_I32 = 5;

const WIRE_TYPE = {
  int32: WIRE_VARINT, int64: WIRE_VARINT, uint32: WIRE_VARINT, uint64: WIRE_VARINT,
  sint32: WIRE_VARINT, sint64: WIRE_VARINT, bool: WIRE_VARINT, enum: WIRE_VARINT,
  fixed64: WIRE_I64, sfixed64: WIRE_I64, double: WIRE_I64,
  fixed32: WIRE_I32, sfixed32: WIRE_I32, float: WIRE_I32,
  string: WIRE_LEN, bytes: WIRE_LEN, message: WIRE_LEN,
};

// The well-known types the API uses, in case a schema leaves them out.
const WELL_KNOWN = {
  'google.protobuf.Timestamp': {
    fields: [
      { name: 'seconds', number: 1, type: 'int64', repeated: false, type_name: null, oneof: null },
      { name: 'nanos', number: 2, type: 'int32', repeated: false, type_name: null, oneof: null },
    ],
    map_entry: false,
  },
  'google.protobuf.Duration': {
    fields: [
      { name: 'seconds', number: 1, type: 'int64', repeated: false, type_name: null, oneof: null },
      { name: 'nanos', number: 2, type: 'int32', repeated: false, type_name: null, oneof: null },
    ],
    map_entry: false,
  },
  'google.protobuf.Empty': { fields: [], map_entry: false },
};

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

let schema = null;
let compiled = new Map();
let loading = null;

/** Uses `obj` (the /schema.json format) as the schema; for tests and for loadSchema. */
export function useSchema(obj) {
  if (!obj || typeof obj !== 'object' || !obj.messages) {
    throw new Error('schema: expected an object with "messages"');
  }
  schema = {
    messages: { ...WELL_KNOWN, ...obj.messages },
    enums: { ...(obj.enums || {}) },
    services: { ...(obj.services || {}) },
  };
  compiled = new Map();
  return schema;
}

/** Fetches /schema.json once and uses it; later calls return the same schema. */
export function loadSchema(url = '/schema.json') {
  if (schema) return Promise.resolve(schema);
  if (!loading) {
    loading = fetch(url, { credentials: 'same-origin', cache: 'no-cache' })
      .then((response) => {
        if (!response.ok) throw new Error(`schema: ${url} answered HTTP ${response.status}`);
        return response.json();
      })
      .then((obj) => useSchema(obj))
      .catch((error) => {
        loading = null;
        throw error;
      });
  }
  return loading;
}

/** The schema in use, or null before loadSchema/useSchema. */
export function getSchema() {
  return schema;
}

/** The input/output types of an RPC, or null when the schema does not name it. */
export function methodInfo(service, method) {
  const s = requireSchema().services[service];
  return (s && s[method]) || null;
}

/** The value names of an enum, in the order of their numbers. */
export function enumNames(enumName) {
  const values = requireSchema().enums[enumName];
  if (!values) throw new Error(`schema: unknown enum ${enumName}`);
  return Object.entries(values).sort((a, b) => a[1] - b[1]).map(([name]) => name);
}

function requireSchema() {
  if (!schema) throw new Error('schema: not loaded (call loadSchema or useSchema first)');
  return schema;
}

// A message type prepared for the codec: fields by number and by name, and which
// fields belong to real oneofs (proto3 `optional` is a synthetic oneof starting with
// '_' and behaves as a plain field that has presence).
function compile(typeName) {
  let type = compiled.get(typeName);
  if (type) return type;
  const def = requireSchema().messages[typeName];
  if (!def) throw new Error(`schema: unknown message ${typeName}`);
  const fields = def.fields.map((f) => {
    const isMap = f.type === 'message' && f.repeated && isMapEntry(f.type_name);
    return {
      name: f.name,
      number: f.number,
      type: f.type,
      typeName: f.type_name || null,
      repeated: !!f.repeated,
      oneof: f.oneof && !f.oneof.startsWith('_') ? f.oneof : null,
      optional: !!(f.oneof && f.oneof.startsWith('_')),
      isMap,
      packable: !!f.repeated && WIRE_TYPE[f.type] !== WIRE_LEN,
    };
  });
  fields.sort((a, b) => a.number - b.number);
  type = {
    name: typeName,
    fields,
    byNumber: new Map(fields.map((f) => [f.number, f])),
    byName: new Map(fields.map((f) => [f.name, f])),
    mapEntry: !!def.map_entry,
  };
  compiled.set(typeName, type);
  return type;
}

function isMapEntry(typeName) {
  const def = requireSchema().messages[typeName];
  return !!(def && def.map_entry);
}

// ---------------------------------------------------------------- encoding

class Writer {
  constructor() {
    this.buf = new Uint8Array(64);
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b) {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  bytes(data) {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  // An unsigned varint of a non-negative Number below 2^32.
  varint32(n) {
    this.ensure(5);
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.pos++] = n;
  }

  // An unsigned varint of a BigInt in [0, 2^64).
  varint64(v) {
    this.ensure(10);
    while (v > 0x7fn) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  tag(number, wireType) {
    this.varint32(number * 8 + wireType);
  }

  fixed32(n) {
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).setUint32(0, n >>> 0, true);
    this.pos += 4;
  }

  fixed64(v) {
    this.ensure(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setBigUint64(0, v, true);
    this.pos += 8;
  }

  float(n) {
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).setFloat32(0, n, true);
    this.pos += 4;
  }

  double(n) {
    this.ensure(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setFloat64(0, n, true);
    this.pos += 8;
  }

  finish() {
    return this.buf.slice(0, this.pos);
  }
}

function toBigInt(value, where) {
  try {
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number') {
      if (!Number.isInteger(value)) throw new Error('not an integer');
      return BigInt(value);
    }
    if (typeof value === 'string') return BigInt(value.trim());
    if (typeof value === 'boolean') return value ? 1n : 0n;
  } catch (_) {
    // fall through to the error below
  }
  throw new TypeError(`${where}: ${JSON.stringify(String(value))} is not an integer`);
}

function toInt(value, where) {
  const n = typeof value === 'number' ? value : Number(toBigInt(value, where));
  if (!Number.isInteger(n)) throw new TypeError(`${where}: ${value} is not an integer`);
  return n;
}

function enumNumber(field, value, where) {
  if (typeof value === 'number') return value;
  if (value === '') return 0;
  if (typeof value === 'string') {
    const values = requireSchema().enums[field.typeName];
    if (values && Object.prototype.hasOwnProperty.call(values, value)) return values[value];
    if (/^-?\d+$/.test(value)) return Number(value);
  }
  throw new TypeError(`${where}: ${JSON.stringify(value)} is not a value of ${field.typeName}`);
}

function toBytes(value, where) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return Uint8Array.from(value);
  throw new TypeError(`${where}: expected bytes (Uint8Array)`);
}

// Whether a singular non-oneof scalar holds its default and is therefore not sent.
function isDefault(field, value) {
  switch (field.type) {
    case 'string': return value === '';
    case 'bytes': return toBytes(value, field.name).length === 0;
    case 'bool': return value === false;
    case 'enum': return enumNumber(field, value, field.name) === 0;
    case 'double': case 'float': return value === 0 && !Object.is(value, -0);
    default:
      if (typeof value === 'bigint') return value === 0n;
      if (typeof value === 'string') return toBigInt(value, field.name) === 0n;
      return value === 0;
  }
}

// Writes one scalar value without its tag (also for the elements of packed fields).
function writeScalar(w, field, value, where) {
  switch (field.type) {
    case 'int32': case 'enum': {
      const n = field.type === 'enum' ? enumNumber(field, value, where) : toInt(value, where);
      // A negative int32 is sign-extended to 64 bits: ten bytes on the wire.
      if (n >= 0) w.varint64(BigInt(n));
      else w.varint64(BigInt.asUintN(64, BigInt(n | 0)));
      break;
    }
    case 'uint32': w.varint32(toInt(value, where) >>> 0); break;
    case 'sint32': {
      const n = toInt(value, where) | 0;
      w.varint32(((n << 1) ^ (n >> 31)) >>> 0);
      break;
    }
    case 'int64': case 'uint64': w.varint64(BigInt.asUintN(64, toBigInt(value, where))); break;
    case 'sint64': {
      const v = BigInt.asIntN(64, toBigInt(value, where));
      w.varint64(BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
      break;
    }
    case 'bool': w.varint32(value ? 1 : 0); break;
    case 'fixed32': w.fixed32(toInt(value, where) >>> 0); break;
    case 'sfixed32': w.fixed32(toInt(value, where) | 0); break;
    case 'fixed64': case 'sfixed64': w.fixed64(BigInt.asUintN(64, toBigInt(value, where))); break;
    case 'float': w.float(Number(value)); break;
    case 'double': w.double(Number(value)); break;
    default: throw new Error(`${where}: ${field.type} is not a scalar`);
  }
}

function writeField(w, field, value, where) {
  switch (field.type) {
    case 'string': {
      if (typeof value !== 'string') throw new TypeError(`${where}: expected a string`);
      const data = utf8Encoder.encode(value);
      w.tag(field.number, WIRE_LEN);
      w.varint32(data.length);
      w.bytes(data);
      break;
    }
    case 'bytes': {
      const data = toBytes(value, where);
      w.tag(field.number, WIRE_LEN);
      w.varint32(data.length);
      w.bytes(data);
      break;
    }
    case 'message': {
      if (typeof value !== 'object') throw new TypeError(`${where}: expected an object`);
      const data = encodeMessage(compile(field.typeName), value, where);
      w.tag(field.number, WIRE_LEN);
      w.varint32(data.length);
      w.bytes(data);
      break;
    }
    default:
      w.tag(field.number, WIRE_TYPE[field.type]);
      writeScalar(w, field, value, where);
  }
}

function encodeMessage(type, obj, path) {
  for (const key of Object.keys(obj)) {
    if (!type.byName.has(key)) throw new Error(`encode ${path}: ${type.name} has no field "${key}"`);
  }
  const w = new Writer();
  const oneofSeen = new Map();
  for (const field of type.fields) {
    const value = obj[field.name];
    if (value === undefined || value === null) continue;
    const where = `${path}.${field.name}`;
    if (field.oneof) {
      if (oneofSeen.has(field.oneof)) {
        throw new Error(`encode ${where}: oneof ${field.oneof} already has ${oneofSeen.get(field.oneof)}`);
      }
      oneofSeen.set(field.oneof, field.name);
    }
    if (field.isMap) {
      const entry = compile(field.typeName);
      for (const [k, v] of Object.entries(value)) {
        const data = encodeMessage(entry, { key: k, value: v }, `${where}[${k}]`);
        w.tag(field.number, WIRE_LEN);
        w.varint32(data.length);
        w.bytes(data);
      }
    } else if (field.repeated) {
      if (!Array.isArray(value)) throw new TypeError(`encode ${where}: expected an array`);
      if (value.length === 0) continue;
      if (field.packable) {
        const inner = new Writer();
        value.forEach((v, i) => writeScalar(inner, field, v, `${where}[${i}]`));
        const data = inner.finish();
        w.tag(field.number, WIRE_LEN);
        w.varint32(data.length);
        w.bytes(data);
      } else {
        value.forEach((v, i) => writeField(w, field, v, `${where}[${i}]`));
      }
    } else {
      // Members of real oneofs and proto3 `optional` fields are sent whenever set;
      // other scalars only when they differ from their default.
      const present = field.oneof || field.optional || field.type === 'message';
      if (!present && isDefault(field, value)) continue;
      writeField(w, field, value, where);
    }
  }
  return w.finish();
}

/** Encodes `obj` as the message `typeName`. */
export function encode(typeName, obj = {}) {
  return encodeMessage(compile(typeName), obj || {}, typeName);
}

// ---------------------------------------------------------------- decoding

class Reader {
  constructor(bytes, start = 0, end = bytes.length) {
    this.buf = bytes;
    this.pos = start;
    this.end = end;
  }

  need(n) {
    if (this.pos + n > this.end) throw new Error('decode: message is truncated');
  }

  // An unsigned varint as a BigInt.
  varint() {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      this.need(1);
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new Error('decode: varint is longer than 10 bytes');
  }

  // A varint that must fit a length or tag (below 2^32).
  uint32() {
    const v = this.varint();
    if (v > 0xffffffffn) throw new Error('decode: length or tag out of range');
    return Number(v);
  }

  view(n) {
    this.need(n);
    const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return view;
  }

  lengthDelimited() {
    const n = this.uint32();
    this.need(n);
    const start = this.pos;
    this.pos += n;
    return [start, this.pos];
  }

  skip(wireType, number) {
    switch (wireType) {
      case WIRE_VARINT: this.varint(); break;
      case WIRE_I64: this.need(8); this.pos += 8; break;
      case WIRE_LEN: this.lengthDelimited(); break;
      case WIRE_I32: this.need(4); this.pos += 4; break;
      case WIRE_SGROUP: {
        for (;;) {
          const tag = this.uint32();
          const wt = tag & 7;
          if (wt === WIRE_EGROUP) {
            if (tag >>> 3 !== number) throw new Error('decode: mismatched end group');
            return;
          }
          this.skip(wt, tag >>> 3);
        }
      }
      default: throw new Error(`decode: invalid wire type ${wireType}`);
    }
  }
}

/** A 64-bit integer as a Number when that is exact, else as a decimal string. */
function int64Value(v) {
  if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  return v.toString();
}

function enumName(field, number) {
  const values = requireSchema().enums[field.typeName];
  if (values) {
    for (const [name, n] of Object.entries(values)) if (n === number) return name;
  }
  return number;
}

function readScalar(r, field) {
  switch (field.type) {
    case 'int32': return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32': return Number(BigInt.asUintN(32, r.varint()));
    case 'sint32': {
      const n = Number(BigInt.asUintN(32, r.varint()));
      return (n >>> 1) ^ -(n & 1);
    }
    case 'int64': return int64Value(BigInt.asIntN(64, r.varint()));
    case 'uint64': return int64Value(r.varint());
    case 'sint64': {
      const v = r.varint();
      return int64Value((v >> 1n) ^ -(v & 1n));
    }
    case 'bool': return r.varint() !== 0n;
    case 'enum': return enumName(field, Number(BigInt.asIntN(32, r.varint())));
    case 'fixed32': return r.view(4).getUint32(0, true);
    case 'sfixed32': return r.view(4).getInt32(0, true);
    case 'fixed64': return int64Value(r.view(8).getBigUint64(0, true));
    case 'sfixed64': return int64Value(r.view(8).getBigInt64(0, true));
    case 'float': return r.view(4).getFloat32(0, true);
    case 'double': return r.view(8).getFloat64(0, true);
    default: throw new Error(`decode: ${field.type} is not a scalar`);
  }
}

function defaultValue(field) {
  if (field.isMap) return {};
  if (field.repeated) return [];
  if (field.type === 'message') return null;
  if (field.type === 'bytes') return new Uint8Array(0);
  if (field.type === 'enum') return enumName(field, 0);
  return SCALAR_DEFAULTS[field.type];
}

function newMessage(type) {
  const obj = {};
  for (const field of type.fields) {
    if (field.oneof || field.optional) continue;
    obj[field.name] = defaultValue(field);
  }
  return obj;
}

function readLenValue(r, field) {
  const [start, end] = r.lengthDelimited();
  if (field.type === 'string') return utf8Decoder.decode(r.buf.subarray(start, end));
  if (field.type === 'bytes') return r.buf.slice(start, end);
  throw new Error(`decode: ${field.type} is not length-delimited`);
}

// Decodes the bytes [start, end) into `obj`, merging as protobuf does when a message
// field occurs more than once: scalars are replaced, repeated fields appended to,
// message fields merged.
function decodeInto(type, obj, r, end) {
  while (r.pos < end) {
    const tag = r.uint32();
    const number = tag >>> 3;
    const wireType = tag & 7;
    if (number === 0) throw new Error('decode: field number 0');
    if (wireType === WIRE_EGROUP) throw new Error('decode: unexpected end group');
    const field = type.byNumber.get(number);
    if (!field) {
      r.skip(wireType, number);
      continue;
    }
    const expected = WIRE_TYPE[field.type];
    if (field.packable && wireType === WIRE_LEN) {
      const [start, stop] = r.lengthDelimited();
      const inner = new Reader(r.buf, start, stop);
      while (inner.pos < stop) obj[field.name].push(readScalar(inner, field));
      continue;
    }
    if (wireType !== expected) {
      // Not what the schema says this field is: skip it as if it were unknown.
      r.skip(wireType, number);
      continue;
    }
    if (field.oneof) {
      for (const other of type.fields) {
        if (other.oneof === field.oneof && other !== field) delete obj[other.name];
      }
    }
    if (field.isMap) {
      const entryType = compile(field.typeName);
      const [start, stop] = r.lengthDelimited();
      const entry = newMessage(entryType);
      decodeInto(entryType, entry, new Reader(r.buf, start, stop), stop);
      const valueField = entryType.byName.get('value');
      let value = entry.value;
      if (value === null && valueField && valueField.type === 'message') {
        value = newMessage(compile(valueField.typeName));
      }
      obj[field.name][String(entry.key)] = value;
    } else if (field.type === 'message') {
      const sub = compile(field.typeName);
      const [start, stop] = r.lengthDelimited();
      const target = field.repeated ? newMessage(sub) : (obj[field.name] || newMessage(sub));
      decodeInto(sub, target, new Reader(r.buf, start, stop), stop);
      if (field.repeated) obj[field.name].push(target);
      else obj[field.name] = target;
    } else {
      const value = expected === WIRE_LEN ? readLenValue(r, field) : readScalar(r, field);
      if (field.repeated) obj[field.name].push(value);
      else obj[field.name] = value;
    }
  }
  if (r.pos !== end) throw new Error('decode: field runs past the end of its message');
}

/** Decodes `bytes` (Uint8Array or ArrayBuffer) as the message `typeName`. */
export function decode(typeName, bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes || 0);
  const type = compile(typeName);
  const obj = newMessage(type);
  decodeInto(type, obj, new Reader(data), data.length);
  return obj;
}
