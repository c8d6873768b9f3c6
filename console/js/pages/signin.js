// Sign-in with a user id and password, and enrollment with a one-time token.

import { h, field, replace, describeError } from '../ui.js';
import { Code } from '../grpcweb.js';

const ACCOUNT = 'teleconsult.v1.AccountService';
const MIN_PASSWORD = 10;

function signInMessage(t, error) {
  switch (error.code) {
    case Code.UNAUTHENTICATED: return t('signin.wrong');
    case Code.PERMISSION_DENIED: return t('signin.locked', { message: error.message || '' });
    case Code.RESOURCE_EXHAUSTED: return t('signin.heldBack', { message: error.message || '' });
    case Code.INVALID_ARGUMENT: return t('signin.invalid', { message: error.message || '' });
    default: return describeError(error);
  }
}

/** #/signin */
export function mount(container, ctx) {
  const { t } = ctx;
  ctx.setTitle(t('signin.title'));
  const user = h('input', {
    type: 'text', name: 'username', autocomplete: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false', testid: 'signin-user',
  });
  const password = h('input', {
    type: 'password', name: 'password', autocomplete: 'current-password', required: true,
    testid: 'signin-password',
  });
  const error = h('p', { class: 'form-error', role: 'alert', testid: 'signin-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'signin-submit' }, t('signin.submit'));
  const form = h('form', { class: 'narrow-form', testid: 'signin-form', novalidate: true },
    field(t('signin.user'), user),
    field(t('signin.password'), password),
    error,
    h('div', { class: 'actions' }, submit));

  let controller = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const userId = user.value.trim();
    if (!userId || !password.value) {
      replace(error, t('signin.missing'));
      error.hidden = false;
      (userId ? password : user).focus();
      return;
    }
    submit.disabled = true;
    controller = new AbortController();
    try {
      await ctx.unary(ACCOUNT, 'SignIn', { user_id: userId, password: password.value }, { signal: controller.signal });
      password.value = '';
      await ctx.reloadIdentity();
      ctx.afterSignIn();
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(error, signInMessage(t, e));
      error.dataset.code = e.codeName || '';
      error.hidden = false;
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });

  container.append(
    h('div', { class: 'signin' },
      h('h1', {}, t('signin.title')),
      h('p', { class: 'lead' }, t('signin.lead')),
      form));
  user.focus();
  return () => controller && controller.abort();
}

/** #/enroll/<token>: choose a password with a one-time enrollment token. */
export function mountEnroll(container, ctx, token) {
  const { t } = ctx;
  ctx.setTitle(t('enroll.title'));
  const password = h('input', {
    type: 'password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD,
    testid: 'enroll-password',
  });
  const again = h('input', {
    type: 'password', autocomplete: 'new-password', required: true, testid: 'enroll-password-again',
  });
  const error = h('p', { class: 'form-error', role: 'alert', testid: 'enroll-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'enroll-submit' }, t('enroll.submit'));
  const form = h('form', { class: 'narrow-form', testid: 'enroll-form', novalidate: true },
    field(t('enroll.password'), password, t('enroll.hint', { n: MIN_PASSWORD })),
    field(t('enroll.again'), again),
    error,
    h('div', { class: 'actions' }, submit));

  const fail = (text, focus) => {
    replace(error, text);
    error.hidden = false;
    if (focus) focus.focus();
  };

  let controller = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (password.value.length < MIN_PASSWORD) return fail(t('enroll.tooShort', { n: MIN_PASSWORD }), password);
    if (password.value !== again.value) return fail(t('enroll.mismatch'), again);
    submit.disabled = true;
    controller = new AbortController();
    try {
      await ctx.unary(ACCOUNT, 'Enroll', { token, password: password.value }, { signal: controller.signal });
      await ctx.reloadIdentity();
      ctx.afterSignIn();
    } catch (e) {
      if (e.name === 'AbortError') return;
      const text = [Code.UNAUTHENTICATED, Code.NOT_FOUND, Code.FAILED_PRECONDITION].includes(e.code)
        ? `${t('enroll.badToken')}${e.message ? ` (${e.message})` : ''}`
        : e.code === Code.INVALID_ARGUMENT
          ? t('signin.invalid', { message: e.message || '' })
          : describeError(e);
      error.dataset.code = e.codeName || '';
      fail(text);
    } finally {
      submit.disabled = false;
    }
  });

  container.append(
    h('div', { class: 'signin' },
      h('h1', {}, t('enroll.title')),
      h('p', { class: 'lead' }, t('enroll.lead')),
      form));
  password.focus();
  return () => controller && controller.abort();
}
