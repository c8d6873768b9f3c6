// Times in Asia/Shanghai, the time Tibet keeps, whatever the browser's own zone.
// China has no daylight saving time: Shanghai is UTC+8 all year, so converting a
// local date and time to an instant is a fixed offset.

export const ZONE = 'Asia/Shanghai';
const OFFSET_MS = 8 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

let language = 'zh';

/** Chooses the language of formatted dates ('zh' or 'en'). */
export function setTimeLanguage(lang) {
  language = lang === 'en' ? 'en' : 'zh';
  formatters.clear();
}

const formatters = new Map();

function formatter(kind) {
  let fmt = formatters.get(kind);
  if (fmt) return fmt;
  const locale = language === 'en' ? 'en-GB' : 'zh-CN';
  const options = {
    datetime: { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
    seconds: { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' },
    date: { year: 'numeric', month: '2-digit', day: '2-digit', weekday: 'short' },
    time: { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
  }[kind];
  fmt = new Intl.DateTimeFormat(locale, { ...options, timeZone: ZONE });
  formatters.set(kind, fmt);
  return fmt;
}

/** A google.protobuf.Timestamp ({ seconds, nanos }) as a Date; null when unset. */
export function fromTimestamp(ts) {
  if (!ts) return null;
  const seconds = Number(ts.seconds || 0);
  const nanos = Number(ts.nanos || 0);
  if (seconds === 0 && nanos === 0) return null;
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6));
}

/** A Date (or milliseconds) as a google.protobuf.Timestamp. */
export function toTimestamp(date) {
  const ms = date instanceof Date ? date.getTime() : Number(date);
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1e6 };
}

function asDate(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value);
  return fromTimestamp(value);
}

/** `2026-12-01 09:30` in Shanghai (in the chosen language); '—' when unset. */
export function formatDateTime(value) {
  const d = asDate(value);
  return d ? formatter('datetime').format(d) : '—';
}

/** Like formatDateTime, with seconds (audit records need them). */
export function formatDateTimeSeconds(value) {
  const d = asDate(value);
  return d ? formatter('seconds').format(d) : '—';
}

/** The date with its weekday, in Shanghai. */
export function formatDate(value) {
  const d = asDate(value);
  return d ? formatter('date').format(d) : '—';
}

/** `09:30` in Shanghai. */
export function formatTime(value) {
  const d = asDate(value);
  return d ? formatter('time').format(d) : '—';
}

/** `09:30–10:00, 2026-12-01` style range: start date and time, end time (or date when it differs). */
export function formatRange(start, end) {
  const s = asDate(start);
  const e = asDate(end);
  if (!s) return '—';
  if (!e) return formatDateTime(s);
  const sameDay = localParts(s).date === localParts(e).date;
  return `${formatDateTime(s)} – ${sameDay ? formatTime(e) : formatDateTime(e)}`;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/**
 * The Shanghai wall-clock reading of an instant: { date: 'YYYY-MM-DD', time: 'HH:MM',
 * weekday: 1 (Monday) .. 7 (Sunday), minutes: minutes after local midnight }.
 */
export function localParts(value = new Date()) {
  const d = asDate(value);
  const shifted = new Date(d.getTime() + OFFSET_MS);
  const date = `${shifted.getUTCFullYear()}-${pad(shifted.getUTCMonth() + 1)}-${pad(shifted.getUTCDate())}`;
  const time = `${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}`;
  const weekday = shifted.getUTCDay() === 0 ? 7 : shifted.getUTCDay();
  return { date, time, weekday, minutes: shifted.getUTCHours() * 60 + shifted.getUTCMinutes() };
}

/** Today's date in Shanghai, 'YYYY-MM-DD' (the value of an <input type="date">). */
export function today() {
  return localParts(new Date()).date;
}

/**
 * The instant of a Shanghai date ('YYYY-MM-DD') and time ('HH:MM' or 'HH:MM:SS',
 * default midnight), as a Date; null when the input is not a valid date and time.
 */
export function fromLocal(dateText, timeText = '00:00') {
  const dm = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateText || '');
  const tm = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(timeText || '');
  if (!dm || !tm) return null;
  const [y, mo, d] = [Number(dm[1]), Number(dm[2]), Number(dm[3])];
  const [h, mi, s] = [Number(tm[1]), Number(tm[2]), Number(tm[3] || 0)];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
  const utc = Date.UTC(y, mo - 1, d, h, mi, s) - OFFSET_MS;
  const date = new Date(utc);
  // Refuse dates such as 2026-02-31 that Date.UTC would roll over.
  if (localParts(date).date !== dateText) return null;
  return date;
}

/** The value of an <input type="datetime-local"> ('YYYY-MM-DDTHH:MM') read as Shanghai time. */
export function fromLocalInput(value) {
  if (!value) return null;
  const [date, time] = value.split('T');
  return fromLocal(date, time || '00:00');
}

/** An instant as the value of an <input type="datetime-local">, in Shanghai time. */
export function toLocalInput(value) {
  const d = asDate(value);
  if (!d) return '';
  const p = localParts(d);
  return `${p.date}T${p.time}`;
}

/** Midnight starting a Shanghai date, and midnight starting the next one. */
export function dayRange(dateText) {
  const start = fromLocal(dateText, '00:00');
  if (!start) return null;
  return { start, end: new Date(start.getTime() + DAY_MS) };
}

/** ISO weekday (1 = Monday .. 7 = Sunday) of a Shanghai date 'YYYY-MM-DD'. */
export function weekdayOf(dateText) {
  const start = fromLocal(dateText, '12:00');
  return start ? localParts(start).weekday : null;
}

/** 'HH:MM' of minutes after midnight (wrapping past 24 hours). */
export function minutesToText(minutes) {
  const m = ((minutes % 1440) + 1440) % 1440;
  return `${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

/** Minutes after midnight of 'HH:MM'; null when invalid. */
export function textToMinutes(text) {
  const m = /^(\d{2}):(\d{2})/.exec(text || '');
  if (!m) return null;
  const h = Number(m[1]);
  const mi = Number(m[2]);
  if (h > 23 || mi > 59) return null;
  return h * 60 + mi;
}

/** A duration in seconds as `1 h 05 min` / `12 min 30 s` style text (language-neutral units). */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const [hu, mu, su, sp] = language === 'en' ? ['h', 'min', 's', ' '] : ['小时', '分', '秒', ''];
  if (h > 0) return `${h}${sp}${hu}${sp}${pad(m)}${sp}${mu}`;
  if (m > 0) return `${m}${sp}${mu}${sp}${pad(sec)}${sp}${su}`;
  return `${sec}${sp}${su}`;
}
