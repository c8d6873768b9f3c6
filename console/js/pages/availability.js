// #/availability: a doctor's weekly hours (Asia/Shanghai local time), the periods they
// are away, and whether bookings are accepted without asking them.

import { h, replace, field, section, checkbox, busy } from '../ui.js';
import { SCHEDULING } from '../consult.js';

const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];

export function mount(container, ctx) {
  const { t, time } = ctx;
  ctx.setTitle(t('availability.title'));
  const me = ctx.principal && ctx.principal.user_id;
  const controller = new AbortController();
  const signal = controller.signal;

  // The editor's state: rows of plain values, drawn into inputs by render().
  let weekly = []; // { weekday, start: 'HH:MM', end: 'HH:MM' }
  let exceptions = []; // { start: 'YYYY-MM-DDTHH:MM', end, reason }

  const weeklyBody = h('tbody', { testid: 'availability-weekly' });
  const exceptionsBody = h('tbody', { testid: 'availability-exceptions' });
  const { input: autoAccept, el: autoAcceptField } = checkbox(t('availability.autoAccept'), { testid: 'availability-auto-accept' });
  const addInterval = h('button', { type: 'button', class: 'secondary', testid: 'availability-add' }, t('availability.add'));
  const addException = h('button', { type: 'button', class: 'secondary', testid: 'availability-exception-add' }, t('availability.addException'));
  const save = h('button', { type: 'submit', class: 'primary', testid: 'availability-save' }, t('availability.save'));
  const saved = h('p', { class: 'ok', testid: 'availability-saved', role: 'status', hidden: true });

  function weekdaySelect(value, i) {
    const el = h('select', { testid: `availability-weekday-${i}`, 'aria-label': t('availability.weekday') },
      WEEKDAYS.map((d) => h('option', { value: String(d) }, t(`weekday.${d}`))));
    el.value = String(value);
    el.addEventListener('change', () => { weekly[i].weekday = Number(el.value); });
    return el;
  }

  function timeInput(value, testid, label, onChange) {
    const el = h('input', { type: 'time', step: 300, value, testid, 'aria-label': label, required: true });
    el.addEventListener('input', () => onChange(el.value));
    el.addEventListener('change', () => onChange(el.value));
    return el;
  }

  function render() {
    replace(weeklyBody, weekly.map((row, i) => {
      const remove = h('button', { type: 'button', class: 'link-button', testid: `availability-remove-${i}` }, t('common.remove'));
      remove.addEventListener('click', () => {
        weekly.splice(i, 1);
        render();
        addInterval.focus();
      });
      const crosses = row.start && row.end && row.end <= row.start;
      return h('tr', { testid: `availability-row-${i}` },
        h('td', {}, weekdaySelect(row.weekday, i)),
        h('td', {}, timeInput(row.start, `availability-start-${i}`, t('availability.start'), (v) => { row.start = v; })),
        h('td', {}, timeInput(row.end, `availability-end-${i}`, t('availability.end'), (v) => { row.end = v; }),
          crosses ? h('small', { class: 'hint' }, ' ', t('availability.nextDay')) : null),
        h('td', {}, remove));
    }));
    replace(exceptionsBody, exceptions.map((row, i) => {
      const remove = h('button', { type: 'button', class: 'link-button', testid: `availability-exception-remove-${i}` }, t('common.remove'));
      remove.addEventListener('click', () => {
        exceptions.splice(i, 1);
        render();
        addException.focus();
      });
      const start = h('input', { type: 'datetime-local', step: 300, value: row.start, testid: `availability-exception-start-${i}`, 'aria-label': t('availability.from') });
      const end = h('input', { type: 'datetime-local', step: 300, value: row.end, testid: `availability-exception-end-${i}`, 'aria-label': t('availability.to') });
      const reason = h('input', { type: 'text', value: row.reason, maxlength: 200, testid: `availability-exception-reason-${i}`, 'aria-label': t('availability.reason') });
      start.addEventListener('change', () => { row.start = start.value; });
      end.addEventListener('change', () => { row.end = end.value; });
      reason.addEventListener('input', () => { row.reason = reason.value; });
      return h('tr', { testid: `availability-exception-row-${i}` },
        h('td', {}, start), h('td', {}, end), h('td', {}, reason), h('td', {}, remove));
    }));
  }

  addInterval.addEventListener('click', () => {
    // A new interval starts on today's weekday (in Shanghai), 09:00–12:00.
    weekly.push({ weekday: time.localParts().weekday, start: '09:00', end: '12:00' });
    render();
    const input = weeklyBody.querySelector(`[data-testid="availability-start-${weekly.length - 1}"]`);
    if (input) input.focus();
  });

  addException.addEventListener('click', () => {
    const today = time.today();
    exceptions.push({ start: `${today}T00:00`, end: `${today}T23:55`, reason: '' });
    render();
    const input = exceptionsBody.querySelector(`[data-testid="availability-exception-start-${exceptions.length - 1}"]`);
    if (input) input.focus();
  });

  function toRequest() {
    const out = { doctor_id: me, weekly: [], exceptions: [], auto_accept: autoAccept.checked };
    for (const [i, row] of weekly.entries()) {
      const start = time.textToMinutes(row.start);
      let end = time.textToMinutes(row.end);
      if (start === null || end === null) throw new Error(t('availability.badTime', { n: i + 1 }));
      // An end at or before the start means the next day (e.g. a night shift).
      if (end <= start) end += 1440;
      out.weekly.push({ weekday: row.weekday, start_minute: start, end_minute: end });
    }
    for (const [i, row] of exceptions.entries()) {
      const start = time.fromLocalInput(row.start);
      const end = time.fromLocalInput(row.end);
      if (!start || !end) throw new Error(t('availability.badException', { n: i + 1 }));
      out.exceptions.push({ start: time.toTimestamp(start), end: time.toTimestamp(end), reason: row.reason.trim() });
    }
    return out;
  }

  function fromAvailability(a) {
    weekly = a.weekly.map((w) => ({
      weekday: w.weekday, start: time.minutesToText(w.start_minute), end: time.minutesToText(w.end_minute),
    }));
    exceptions = a.exceptions.map((e) => ({
      start: time.toLocalInput(e.start), end: time.toLocalInput(e.end), reason: e.reason,
    }));
    autoAccept.checked = a.auto_accept;
    render();
  }

  const form = h('form', { testid: 'availability-form' },
    section(t('availability.weeklyTitle'),
      h('p', { class: 'hint' }, t('availability.weeklyHint')),
      h('table', { class: 'data compact' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('availability.weekday')),
          h('th', { scope: 'col' }, t('availability.start')),
          h('th', { scope: 'col' }, t('availability.end')),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('common.remove'))))),
        weeklyBody),
      h('p', {}, addInterval)),
    section(t('availability.exceptionsTitle'),
      h('p', { class: 'hint' }, t('availability.exceptionsHint')),
      h('table', { class: 'data compact' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('availability.from')),
          h('th', { scope: 'col' }, t('availability.to')),
          h('th', { scope: 'col' }, t('availability.reason')),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('common.remove'))))),
        exceptionsBody),
      h('p', {}, addException)),
    section(t('availability.bookingTitle'), autoAcceptField, h('p', { class: 'hint' }, t('availability.autoAcceptHint'))),
    h('div', { class: 'actions sticky-actions' }, save, saved));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    saved.hidden = true;
    let availability;
    try {
      availability = toRequest();
    } catch (e) {
      ctx.showError(e.message);
      return;
    }
    busy(save, async () => {
      try {
        fromAvailability(await ctx.unary(SCHEDULING, 'SetAvailability', { availability }, { signal }));
        replace(saved, t('availability.saved', { at: time.formatTime(new Date()) }));
        saved.hidden = false;
        ctx.announce(t('availability.saved', { at: time.formatTime(new Date()) }));
      } catch (e) {
        if (e.name !== 'AbortError') ctx.showError(e);
      }
    });
  });

  container.append(h('h1', {}, t('availability.title')), h('p', { class: 'lead' }, t('availability.lead')), form);
  render();

  // Nothing is editable until what is published has been read, so that it is not
  // overwritten by accident.
  const controls = [addInterval, addException, save, autoAccept];
  for (const el of controls) el.disabled = true;
  form.dataset.loaded = 'false';
  ctx.unary(SCHEDULING, 'GetAvailability', { doctor_id: me }, { signal })
    .then(fromAvailability)
    .catch((e) => { if (e.name !== 'AbortError') ctx.showError(e); })
    .finally(() => {
      for (const el of controls) el.disabled = false;
      form.dataset.loaded = 'true';
    });

  return () => controller.abort();
}
