// #/admin/accounts: the users an admin manages, and for each a way into the console:
// a password the admin sets (AccountService/SetPassword, which also lifts a lockout)
// or a one-time enrollment link with which the user chooses their own
// (AccountService/CreateEnrollment). Platform admins choose the institution; an
// institution's admins see their own. The broker decides what may be done: its
// refusals are shown as they come.

import { h, replace, field, select, section, busy, checkbox, describeError, uid } from '../ui.js';
import { loadInstitutions, institutionName, personName } from '../directory.js';

const DIRECTORY = 'teleconsult.v1.DirectoryService';
const ACCOUNT = 'teleconsult.v1.AccountService';
// The broker's rules (domain/account.rs), checked here first to spare a round trip.
const MIN_PASSWORD = 10;
const DEFAULT_HOURS = 72;
const MAX_HOURS = 30 * 24;
const ROLES = ['ROLE_CLINIC_STAFF', 'ROLE_DOCTOR', 'ROLE_INTERPRETER', 'ROLE_ADMIN'];

/** Characters as the broker counts them (code points, not UTF-16 units). */
const length = (text) => [...text].length;

export function mount(container, ctx) {
  const { t, tEnum, time } = ctx;
  ctx.setTitle(t('accounts.title'));
  const controller = new AbortController();
  const signal = controller.signal;
  const principal = ctx.principal || {};
  const platform = principal.role === 'ROLE_ADMIN' && principal.institution_id === 'platform';

  // ---- which users -------------------------------------------------------------

  const institution = platform
    ? h('select', { testid: 'accounts-institution' }, h('option', { value: '' }, t('accounts.allInstitutions')))
    : null;
  const role = select([{ value: '', label: t('common.all') }, ...ROLES.map((r) => ({ value: r, label: tEnum(r) }))],
    { testid: 'accounts-role' });
  const { input: includeInactive, el: inactiveField } = checkbox(t('accounts.includeInactive'), { testid: 'accounts-include-inactive' });
  const search = h('input', { type: 'search', testid: 'accounts-search', autocapitalize: 'none', spellcheck: 'false', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'accounts-load' }, t('accounts.load'));

  let institutions = new Map();
  const institutionsLoaded = loadInstitutions().then((map) => {
    institutions = map;
    if (institution) {
      const sorted = [...map.values()].sort((a, b) => a.id.localeCompare(b.id));
      for (const i of sorted) institution.appendChild(h('option', { value: i.id }, `${institutionName(i)} (${i.id})`));
      institution.dataset.loaded = 'true';
    }
  }).catch(() => {});

  const form = h('form', { testid: 'accounts-form', class: 'search-form' },
    h('div', { class: 'grid' },
      institution
        ? field(t('accounts.institution'), institution)
        : h('div', { class: 'field' },
          h('span', { class: 'label' }, t('accounts.institution')),
          h('p', { testid: 'accounts-own-institution', 'data-institution-id': principal.institution_id || '' },
            principal.institution_id || '—')),
      field(t('accounts.role'), role),
      field(t('accounts.search'), search, t('accounts.searchHint'))),
    inactiveField,
    h('div', { class: 'actions' }, submit));

  if (!institution) {
    institutionsLoaded.then(() => {
      const own = form.querySelector('[data-testid="accounts-own-institution"]');
      const inst = institutions.get(principal.institution_id);
      if (own && inst) own.textContent = `${institutionName(inst)} (${inst.id})`;
    });
  }

  // ---- the list ------------------------------------------------------------------

  const panel = h('div', { testid: 'account-panel-box' });
  const results = h('div', { testid: 'accounts-results' });
  let users = [];
  let opened = null; // { user, kind, opener } while a panel is open

  function matches(user) {
    const needle = search.value.trim().toLowerCase();
    if (!needle) return true;
    return [user.id, user.display_name_zh, user.display_name_en, user.institution_id]
      .some((text) => (text || '').toLowerCase().includes(needle));
  }

  function nameOf(user) {
    const name = personName(user);
    return name && name !== user.id ? `${name} (${user.id})` : user.id;
  }

  function render() {
    const shown = users.filter(matches);
    if (shown.length === 0) {
      replace(results, h('p', { class: 'empty', testid: 'accounts-empty' }, t('accounts.empty')));
      return shown.length;
    }
    const rows = shown.map((user) => {
      const setPassword = h('button', {
        type: 'button', class: 'secondary', testid: `account-set-password-${user.id}`,
        onclick: (event) => open(user, 'password', event.currentTarget),
      }, t('accounts.setPassword'), h('span', { class: 'visually-hidden' }, ` ${nameOf(user)}`));
      const enroll = h('button', {
        type: 'button', class: 'secondary', testid: `account-enroll-${user.id}`,
        disabled: !user.active,
        onclick: (event) => open(user, 'enroll', event.currentTarget),
      }, t('accounts.makeLink'), h('span', { class: 'visually-hidden' }, ` ${nameOf(user)}`));
      const inst = institutions.get(user.institution_id);
      return h('tr', {
        testid: `account-row-${user.id}`, 'data-user-id': user.id, 'data-institution-id': user.institution_id, 'data-role': user.role,
        'data-active': String(Boolean(user.active)), class: user.active ? null : 'inactive',
      },
      h('th', { scope: 'row' }, h('code', {}, user.id)),
      h('td', {}, personName(user) || '—'),
      h('td', { title: user.institution_id }, inst ? institutionName(inst) : user.institution_id),
      h('td', {}, tEnum(user.role)),
      h('td', {}, h('span', { class: ['badge', user.active ? 'outcome-ok' : 'state-cancelled'] },
        user.active ? t('accounts.active') : t('accounts.inactive'))),
      h('td', {}, h('div', { class: 'row-actions' }, setPassword, enroll)));
    });
    replace(results,
      h('p', { testid: 'accounts-count', 'data-count': String(shown.length) }, t('accounts.count', { n: shown.length })),
      h('div', { class: 'table-scroll' }, h('table', { class: 'data accounts', testid: 'accounts-table' },
        h('caption', { class: 'visually-hidden' }, t('accounts.listTitle')),
        h('thead', {}, h('tr', {},
          ['accounts.userId', 'accounts.name', 'accounts.institution', 'accounts.role', 'accounts.status', 'accounts.actions']
            .map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', {}, rows))));
    return shown.length;
  }

  async function load() {
    ctx.clearError();
    const request = {
      institution_id: institution ? institution.value : (principal.institution_id || ''),
      role: role.value || 0,
      include_inactive: includeInactive.checked,
    };
    try {
      const [r] = await Promise.all([ctx.unary(DIRECTORY, 'ListUsers', request, { signal }), institutionsLoaded]);
      users = r.users.slice().sort((a, b) => a.institution_id.localeCompare(b.institution_id) || a.id.localeCompare(b.id));
      results.dataset.loaded = 'true';
      const n = render();
      ctx.announce(t('accounts.count', { n }));
    } catch (e) {
      if (e.name !== 'AbortError') ctx.showError(e);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(submit, load);
  });
  search.addEventListener('input', () => {
    if (results.dataset.loaded) render();
  });

  // ---- the panel: a password, or an enrollment link, for one user ------------------

  function close({ restoreFocus = true } = {}) {
    const was = opened;
    opened = null;
    replace(panel);
    if (restoreFocus && was && was.opener && was.opener.isConnected) was.opener.focus();
  }

  function open(user, kind, opener) {
    ctx.clearError();
    opened = { user, kind, opener };
    const headingId = uid('panel');
    const body = kind === 'password' ? passwordForm(user) : enrollmentForm(user);
    const closeButton = h('button', { type: 'button', class: 'secondary', testid: 'account-panel-close', onclick: () => close() },
      t('accounts.close'));
    const box = h('section', {
      class: 'card account-panel', testid: 'account-panel', 'aria-labelledby': headingId,
      'data-user-id': user.id, 'data-kind': kind,
    },
    h('h2', { id: headingId }, t(kind === 'password' ? 'accounts.passwordTitle' : 'accounts.enrollTitle', { user: nameOf(user) })),
    body.el,
    h('div', { class: 'actions' }, closeButton));
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
      }
    });
    replace(panel, box);
    body.first.focus();
    box.scrollIntoView({ block: 'nearest' });
  }

  function formError(testid) {
    const el = h('p', { class: 'form-error', role: 'alert', testid, hidden: true });
    return {
      el,
      show(text, code, focus) {
        replace(el, text);
        el.dataset.code = code || '';
        el.hidden = false;
        if (focus) focus.focus();
      },
      clear() {
        el.hidden = true;
        el.dataset.code = '';
        replace(el);
      },
    };
  }

  function passwordForm(user) {
    // The user id for password managers, which pair a new password with an account.
    const username = h('input', { type: 'text', autocomplete: 'username', value: user.id, readOnly: true, hidden: true, tabindex: '-1' });
    const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, testid: 'account-password' });
    const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, testid: 'account-password-again' });
    const error = formError('account-password-error');
    // Focused once the password is set (the button is disabled meanwhile, which
    // drops the focus), so that the keyboard stays in the panel.
    const done = h('p', { class: 'ok', role: 'status', testid: 'account-password-done', hidden: true, tabindex: '-1' });
    const save = h('button', { type: 'submit', class: 'primary', testid: 'account-password-submit' }, t('accounts.savePassword'));
    const form = h('form', { class: 'narrow-form', testid: 'account-password-form', novalidate: true },
      username,
      h('p', { class: 'hint' }, t('accounts.passwordLead')),
      field(t('accounts.newPassword'), password, t('accounts.passwordHint', { n: MIN_PASSWORD })),
      field(t('accounts.newPasswordAgain'), again),
      error.el,
      done,
      h('div', { class: 'actions' }, save));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      error.clear();
      done.hidden = true;
      const chosen = password.value;
      if (length(chosen) < MIN_PASSWORD) return error.show(t('accounts.tooShort', { n: MIN_PASSWORD }), '', password);
      if (chosen !== again.value) return error.show(t('accounts.mismatch'), '', again);
      return busy(save, async () => {
        try {
          await ctx.unary(ACCOUNT, 'SetPassword', { user_id: user.id, password: chosen }, { signal });
          password.value = '';
          again.value = '';
          replace(done, t('accounts.passwordSet', { user: nameOf(user) }));
          done.hidden = false;
          done.focus();
        } catch (e) {
          if (e.name === 'AbortError') return;
          error.show(describeError(e), e.codeName, password);
        }
      });
    });
    return { el: form, first: password };
  }

  function enrollmentForm(user) {
    const hours = h('input', {
      type: 'number', min: 1, max: MAX_HOURS, step: 1, inputmode: 'numeric', required: true,
      value: String(DEFAULT_HOURS), testid: 'account-enroll-hours',
    });
    const error = formError('account-enroll-error');
    const make = h('button', { type: 'submit', class: 'primary', testid: 'account-enroll-submit' }, t('accounts.makeLinkSubmit'));
    const result = h('div', { testid: 'account-enroll-result-box', 'aria-live': 'polite' });
    const form = h('form', { class: 'narrow-form', testid: 'account-enroll-form', novalidate: true },
      h('p', { class: 'hint' }, t('accounts.enrollLead')),
      field(t('accounts.validHours'), hours, t('accounts.validHoursHint', { max: MAX_HOURS, days: MAX_HOURS / 24 })),
      error.el,
      h('div', { class: 'actions' }, make));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      error.clear();
      replace(result);
      const n = Number(hours.value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_HOURS) {
        return error.show(t('accounts.badHours', { max: MAX_HOURS }), '', hours);
      }
      return busy(make, async () => {
        try {
          const r = await ctx.unary(ACCOUNT, 'CreateEnrollment', { user_id: user.id, valid_hours: n }, { signal });
          showLink(result, user, r);
        } catch (e) {
          if (e.name === 'AbortError') return;
          error.show(describeError(e), e.codeName, hours);
        }
      });
    });
    return { el: h('div', {}, form, result), first: hours };
  }

  function showLink(box, user, response) {
    const link = `${window.location.origin}${response.enrollment_path}`;
    const expires = time.fromTimestamp(response.expires_at);
    const linkInput = h('input', {
      type: 'text', readOnly: true, value: link, testid: 'account-enroll-link', class: 'mono',
      autocomplete: 'off', spellcheck: 'false',
      onfocus: (event) => event.currentTarget.select(),
    });
    const copied = h('span', { role: 'status', testid: 'account-enroll-copied', class: 'copy-status' });
    const copy = h('button', { type: 'button', class: 'secondary', testid: 'account-enroll-copy' }, t('accounts.copy'));
    copy.addEventListener('click', async () => {
      const ok = await copyText(link, linkInput);
      copied.dataset.copied = String(ok);
      replace(copied, ok ? t('accounts.copied') : t('accounts.copyFailed'));
      if (!ok) linkInput.focus();
    });
    replace(box, h('div', { class: 'enroll-link', testid: 'account-enroll-result', 'data-user-id': user.id },
      field(t('accounts.link'), linkInput),
      h('div', { class: 'actions' }, copy, copied),
      h('p', {
        testid: 'account-enroll-expires',
        'data-expires': expires ? String(Math.floor(expires.getTime() / 1000)) : '',
      }, t('accounts.expires', { at: time.formatDateTime(expires) })),
      h('p', { class: 'warning' }, t('accounts.linkWarning', { user: nameOf(user) }))));
    copy.focus();
  }

  container.append(
    h('h1', {}, t('accounts.title')),
    h('p', { class: 'lead' }, t('accounts.lead')),
    section(t('accounts.filters'), form),
    panel,
    results);
  busy(submit, load);
  return () => {
    controller.abort();
    close({ restoreFocus: false });
  };
}

/** Puts `text` on the clipboard; falls back to selecting `input` and copying that. */
async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // Refused (no permission, or the page lost focus): try the older way.
  }
  try {
    input.focus();
    input.select();
    return document.execCommand('copy');
  } catch (_) {
    return false;
  }
}
