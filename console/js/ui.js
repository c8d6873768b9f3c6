// Small DOM helpers shared by the pages. Everything is built with createElement and
// text nodes (never innerHTML), so text from the broker cannot become markup, and no
// inline style attribute is ever set (the console's CSP forbids them).

import { t, tEnum } from './i18n.js';
import { GrpcError } from './grpcweb.js';

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'required', 'readOnly', 'multiple', 'open']);

/**
 * Builds an element. `attrs`: `class` (string or array), `testid` (data-testid),
 * `on<event>` handlers, `data-*`/`aria-*` attributes, properties such as value,
 * checked, disabled, hidden, htmlFor (`for`). Children: nodes, strings, numbers,
 * arrays; null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'testid') {
      el.setAttribute('data-testid', value);
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style') {
      throw new Error('h(): inline styles are not allowed (CSP); use a class');
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uniqueCounter = 0;
/** A fresh id for label/input pairs. */
export function uid(prefix = 'f') {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled form control: <div class="field"><label/>control<small hint/></div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const children = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    children.push(h('small', { id: hintId, class: 'hint' }, hint));
  }
  return h('div', { class: ['field', control.type === 'checkbox' ? 'field-check' : null] }, ...children);
}

/** A labelled checkbox (label after the box). */
export function checkbox(label, attrs = {}) {
  const input = h('input', { type: 'checkbox', ...attrs });
  input.id = input.id || uid();
  return { input, el: h('div', { class: 'field field-check' }, input, h('label', { for: input.id }, label)) };
}

/** A <select> of [{ value, label }]. */
export function select(options, attrs = {}) {
  const el = h('select', attrs);
  for (const o of options) el.appendChild(h('option', { value: String(o.value) }, o.label));
  if (attrs.value !== undefined) el.value = String(attrs.value);
  return el;
}

/** A message in a GrpcError (or any error) that a person reads. */
export function describeError(error) {
  if (error instanceof GrpcError) {
    const general = t(`error.code.${error.codeName}`);
    return error.message ? `${general}: ${error.message}` : general;
  }
  if (error && error.name === 'AbortError') return t('error.aborted');
  return t('error.unexpected', { message: (error && error.message) || String(error) });
}

/** Disables `button` while `task()` runs; returns its result. */
export async function busy(button, task) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await task();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

/** A translated enum value as a badge, e.g. a consultation state. */
export function stateBadge(state, testid = 'consultation-state') {
  const short = String(state).replace(/^CONSULTATION_STATE_/, '').toLowerCase();
  return h('span', { class: ['badge', `state-${short}`], testid, 'data-state': state }, tEnum(state));
}

/** A key/value description list: [[label, value, testid?], ...]; empty values shown as '—'. */
export function facts(rows) {
  const dl = h('dl', { class: 'facts' });
  for (const [label, value, testid] of rows) {
    if (value === undefined) continue;
    const empty = value === null || value === '' || (Array.isArray(value) && value.length === 0);
    dl.appendChild(h('dt', {}, label));
    dl.appendChild(h('dd', { testid }, empty ? '—' : value));
  }
  return dl;
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/** Trims every string value of an object (form values). */
export function trimmed(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) out[k] = typeof v === 'string' ? v.trim() : v;
  return out;
}
