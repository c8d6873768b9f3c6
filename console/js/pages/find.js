// #/find: clinic staff find a specialist and a free slot (by specialty, language,
// institution and date), then book it for a patient.

import { h, replace, field, section, describeError, busy } from '../ui.js';
import { SCHEDULING, specialtyInput, languageSelect, specialtyLabel } from '../consult.js';
import { loadInstitutions, institutionName, personName, rememberSpecialists, institutionLabel } from '../directory.js';

const DIRECTORY = 'teleconsult.v1.DirectoryService';
const PAGE_SIZE = 50;

export function mount(container, ctx) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('find.title'));
  const controller = new AbortController();
  const signal = controller.signal;

  const specialists = new Map(); // user id -> Specialist
  let slots = [];
  let nextToken = '';
  let lastQuery = null;
  let chosen = null;

  // ------------------------------------------------------------ search form
  const { input: specialty, list: specialtyList } = specialtyInput({ testid: 'slot-search-specialty' });
  const language = languageSelect({ testid: 'slot-search-language' });
  const institution = h('select', { testid: 'slot-search-institution' }, h('option', { value: '' }, t('common.any')));
  const doctor = h('select', { testid: 'slot-search-doctor' }, h('option', { value: '' }, t('common.any')));
  const date = h('input', { type: 'date', testid: 'slot-search-date', value: time.today(), required: true });
  const days = h('select', { testid: 'slot-search-days' },
    [1, 3, 7, 14].map((n) => h('option', { value: String(n) }, t('find.days', { n }))));
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'slot-search-submit' }, t('find.search'));
  const form = h('form', { class: 'search-form', testid: 'slot-search-form' },
    h('div', { class: 'grid' },
      field(t('consult.specialty'), specialty, t('find.specialtyHint')),
      field(t('find.language'), language),
      field(t('find.institution'), institution),
      field(t('consult.doctor'), doctor),
      field(t('find.date'), date, t('find.dateHint')),
      field(t('find.days.label'), days)),
    specialtyList,
    h('div', { class: 'actions' }, submit));

  // The doctors offered follow the other filters.
  let doctorsController = null;
  let doctorsTimer = null;
  async function refreshDoctors() {
    if (doctorsController) doctorsController.abort();
    doctorsController = new AbortController();
    const keep = doctor.value;
    try {
      const r = await ctx.unary(DIRECTORY, 'SearchSpecialists', {
        specialty: specialty.value.trim().toLowerCase(),
        institution_id: institution.value,
        language: language.value || 0,
        page: { page_size: 200 },
      }, { signal: doctorsController.signal });
      rememberSpecialists(r.specialists);
      replace(doctor, h('option', { value: '' }, t('common.any')),
        r.specialists.map((s) => h('option', { value: s.user_id }, `${personName(s)} (${s.user_id})`)));
      doctor.value = r.specialists.some((s) => s.user_id === keep) ? keep : '';
    } catch (_) {
      // The list stays as it was; the search still works without it.
    }
  }
  const soon = () => {
    clearTimeout(doctorsTimer);
    doctorsTimer = setTimeout(refreshDoctors, 300);
  };
  specialty.addEventListener('input', soon);
  institution.addEventListener('change', soon);
  language.addEventListener('change', soon);
  refreshDoctors();

  loadInstitutions().then((map) => {
    const consulting = [...map.values()].filter((i) => i.kind === 'INSTITUTION_KIND_CONSULTING');
    for (const i of consulting) institution.appendChild(h('option', { value: i.id }, institutionName(i)));
  }).catch(() => {});

  // ------------------------------------------------------------ results
  const results = h('div', { testid: 'slot-results', 'aria-live': 'polite' });
  const specialistsBox = h('div', { testid: 'specialist-results' });
  const bookBox = h('div', { testid: 'book-panel' });

  function doctorCell(slot) {
    const s = specialists.get(slot.doctor_id);
    if (!s) return slot.doctor_id;
    return [
      h('strong', {}, personName(s)), ' ',
      h('span', { class: 'muted' }, s.title || ''),
      h('br'),
      h('span', { class: 'muted' }, s.languages.map((l) => tEnum(l)).join('、')),
    ];
  }

  function renderSlots() {
    if (!lastQuery) {
      replace(results);
      return;
    }
    if (slots.length === 0) {
      replace(results, h('p', { class: 'empty', testid: 'slot-empty' }, t('find.noSlots')));
      return;
    }
    const rows = slots.map((slot, index) => {
      const pick = h('button', {
        type: 'button', class: chosen === slot ? 'primary' : 'secondary', testid: `slot-${index}`,
        'aria-pressed': String(chosen === slot),
        'data-doctor-id': slot.doctor_id,
        'data-start': String(slot.start && slot.start.seconds),
      }, chosen === slot ? t('find.chosen') : t('find.choose'));
      pick.addEventListener('click', () => choose(slot));
      return h('tr', { testid: `slot-row-${index}`, class: chosen === slot ? 'selected' : null },
        h('td', {}, time.formatDate(slot.start)),
        h('td', {}, `${time.formatTime(slot.start)}–${time.formatTime(slot.end)}`),
        h('td', {}, doctorCell(slot)),
        h('td', {}, institutionLabel(slot.institution_id)),
        h('td', {}, pick));
    });
    const more = h('button', { type: 'button', class: 'secondary', testid: 'slot-more', hidden: !nextToken }, t('common.more'));
    more.addEventListener('click', () => busy(more, () => searchSlots(true)));
    replace(results,
      h('table', { class: 'data', testid: 'slot-table' },
        h('caption', {}, t('find.slotsCaption', { n: slots.length })),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('find.date')),
          h('th', { scope: 'col' }, t('find.time')),
          h('th', { scope: 'col' }, t('consult.doctor')),
          h('th', { scope: 'col' }, t('consult.consulting')),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('find.choose'))))),
        h('tbody', {}, rows)),
      more);
  }

  function renderSpecialists() {
    const list = [...specialists.values()];
    if (!lastQuery) {
      replace(specialistsBox);
      return;
    }
    replace(specialistsBox,
      h('details', { class: 'specialists' },
        h('summary', { testid: 'specialist-toggle' }, t('find.specialistsFound', { n: list.length })),
        h('ul', { class: 'plain' }, list.map((s, i) => h('li', { testid: `specialist-${i}`, 'data-user-id': s.user_id },
          h('strong', {}, personName(s)), ` ${s.title || ''} · `,
          institutionLabel(s.institution_id), ' · ',
          s.specialties.map(specialtyLabel).join('、'), ' · ',
          s.languages.map((l) => tEnum(l)).join('、'),
          s.on_call ? [' · ', h('span', { class: 'badge' }, t('find.onCall'))] : null)))));
  }

  async function searchSlots(append) {
    const q = lastQuery;
    const request = {
      specialty: q.specialty,
      institution_id: q.institution,
      language: q.language || 0,
      doctor_id: q.doctor,
      from: time.toTimestamp(q.from),
      to: time.toTimestamp(q.to),
      page: { page_size: PAGE_SIZE, page_token: append ? nextToken : '' },
    };
    try {
      const r = await ctx.unary(SCHEDULING, 'SearchSlots', request, { signal });
      slots = append ? slots.concat(r.slots) : r.slots;
      nextToken = r.next_page_token;
      // Name doctors that the specialist search did not return (e.g. past its page).
      await Promise.all(r.slots.filter((s) => !specialists.has(s.doctor_id)).map(async (s) => {
        try {
          const profile = await ctx.unary(DIRECTORY, 'GetSpecialist', { user_id: s.doctor_id }, { signal });
          specialists.set(profile.user_id, profile);
        } catch (_) {
          // The id is shown instead.
        }
      }));
      renderSlots();
      ctx.announce(t('find.slotsCaption', { n: slots.length }));
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.clearError();
    const range = time.dayRange(date.value);
    if (!range) {
      ctx.showError(t('find.badDate'));
      date.focus();
      return;
    }
    const span = Number(days.value) || 1;
    lastQuery = {
      specialty: specialty.value.trim().toLowerCase(),
      language: language.value,
      institution: institution.value,
      doctor: doctor.value,
      from: range.start,
      to: new Date(range.start.getTime() + span * 86400000),
    };
    chosen = null;
    renderBook();
    busy(submit, async () => {
      specialists.clear();
      try {
        const r = await ctx.unary(DIRECTORY, 'SearchSpecialists', {
          specialty: lastQuery.specialty,
          institution_id: lastQuery.institution,
          language: lastQuery.language || 0,
          page: { page_size: 200 },
        }, { signal });
        for (const s of r.specialists) specialists.set(s.user_id, s);
        rememberSpecialists(r.specialists);
      } catch (e) {
        if (e.name === 'AbortError') return;
        ctx.showError(e);
        return;
      }
      renderSpecialists();
      await searchSlots(false);
    });
  });

  // ------------------------------------------------------------ booking
  function choose(slot) {
    chosen = slot;
    renderSlots();
    renderBook();
    const first = bookBox.querySelector('input');
    if (first) first.focus();
  }

  function renderBook() {
    if (!chosen) {
      replace(bookBox);
      return;
    }
    const slot = chosen;
    const s = specialists.get(slot.doctor_id);
    const patient = h('input', {
      type: 'text', testid: 'book-patient-ref', required: true, minlength: 3, maxlength: 64,
      pattern: '[A-Za-z0-9._\\-]{3,64}', autocomplete: 'off', spellcheck: 'false',
    });
    const bookSpecialty = h('input', {
      type: 'text', testid: 'book-specialty', required: true, value: lastQuery.specialty || (s && s.specialties[0]) || '',
    });
    const reason = h('textarea', { testid: 'book-reason', required: true, rows: 3, maxlength: 2000 });
    const summary = h('textarea', { testid: 'book-case-summary', rows: 5, maxlength: 8000 });
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'book-submit' }, t('book.submit'));
    const cancel = h('button', { type: 'button', class: 'secondary', testid: 'book-cancel' }, t('common.cancel'));
    cancel.addEventListener('click', () => {
      chosen = null;
      renderSlots();
      renderBook();
    });
    const form = h('form', { testid: 'book-form' },
      h('p', { class: 'lead', testid: 'book-slot' },
        t('book.slot', {
          when: time.formatRange(slot.start, slot.end),
          doctor: s ? personName(s) : slot.doctor_id,
        })),
      field(t('consult.patient'), patient, t('book.patientHint')),
      field(t('consult.specialty'), bookSpecialty),
      field(t('consult.reason'), reason, t('book.reasonHint')),
      field(t('consult.caseSummary'), summary, t('book.summaryHint')),
      h('div', { class: 'actions' }, submit, cancel));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      ctx.clearError();
      if (!patient.value.trim() || !reason.value.trim() || !bookSpecialty.value.trim()) {
        ctx.showError(t('book.missing'));
        (patient.value.trim() ? (bookSpecialty.value.trim() ? reason : bookSpecialty) : patient).focus();
        return;
      }
      busy(submit, async () => {
        try {
          const c = await ctx.unary(SCHEDULING, 'BookConsultation', {
            slot: { doctor_id: slot.doctor_id, institution_id: slot.institution_id, start: slot.start, end: slot.end },
            patient_ref: patient.value.trim(),
            specialty: bookSpecialty.value.trim().toLowerCase(),
            reason: reason.value.trim(),
            case_summary: summary.value.trim(),
          }, { signal });
          ctx.navigate(`#/consultation/${encodeURIComponent(c.id)}`, { notice: t('book.done', { state: tEnum(c.state) }) });
        } catch (e) {
          if (e.name !== 'AbortError') ctx.showError(e);
        }
      });
    });
    replace(bookBox, section(t('book.title'), form));
  }

  container.append(
    h('h1', {}, t('find.title')),
    section(t('find.searchTitle'), form),
    specialistsBox,
    results,
    bookBox);
  specialty.focus();
  return () => {
    controller.abort();
    clearTimeout(doctorsTimer);
    if (doctorsController) doctorsController.abort();
  };
}
