// The console's shell: who is signed in, the navigation their role is offered, and a
// hash router that mounts one page at a time into <main id="app">.
//
// A page module exports mount(container, ctx, ...routeParams) and returns unmount().
// The router does not decide who may do what: a page opened by URL calls the API and
// shows what the broker answers (PERMISSION_DENIED included).

import { loadSchema } from './proto.js';
import { unary, serverStream, onUnauthenticated, Code } from './grpcweb.js';
import { t, tEnum, getLanguage, setLanguage, onLanguageChange, initLanguage } from './i18n.js';
import * as time from './time.js';
import { h, replace, describeError } from './ui.js';
import { institutionName, personName, resetDirectory } from './directory.js';
import { keepInput, restoreInput } from './keep.js';

const DIRECTORY = 'teleconsult.v1.DirectoryService';
const ACCOUNT = 'teleconsult.v1.AccountService';
const RETURN_KEY = 'teleconsult.returnTo';

// Route table: hash path pattern -> page module (and the export that mounts it).
const ROUTES = [
  { pattern: /^\/signin$/, module: 'signin', public: true },
  { pattern: /^\/enroll\/([^/]+)$/, module: 'signin', exportName: 'mountEnroll', public: true },
  { pattern: /^\/find$/, module: 'find' },
  { pattern: /^\/consultations$/, module: 'consultations' },
  { pattern: /^\/consultation\/([^/]+)$/, module: 'consultation' },
  { pattern: /^\/urgent(?:\/([^/]+))?$/, module: 'urgent' },
  { pattern: /^\/inbox$/, module: 'inbox' },
  { pattern: /^\/availability$/, module: 'availability' },
  { pattern: /^\/opinion\/([^/]+)$/, module: 'opinion' },
  { pattern: /^\/audit$/, module: 'audit' },
  { pattern: /^\/timeline(?:\/([^/]+))?$/, module: 'timeline' },
  { pattern: /^\/verify$/, module: 'verify' },
  { pattern: /^\/room\/([^/]+)$/, module: 'room' },
  { pattern: /^\/admin\/accounts$/, module: 'accounts' },
];

// What each role is offered in the navigation; the first entry is its home page.
const NAV = {
  ROLE_CLINIC_STAFF: ['consultations', 'find', 'urgent'],
  ROLE_DOCTOR: ['inbox', 'consultations', 'availability'],
  ROLE_INTERPRETER: ['consultations'],
  ROLE_ADMIN: ['audit', 'timeline', 'verify', 'accounts', 'consultations'],
};

// Pages whose address is not simply `#/<page>`.
const NAV_PATHS = { accounts: 'admin/accounts' };
const pageHash = (page) => `#/${NAV_PATHS[page] || page}`;

const state = {
  identity: null, // WhoAmIResponse, or null when signed out
  current: null, // { unmount, module, key }
  navToken: 0,
  pendingNotice: null, // shown on the next page, e.g. "booked"

  languageListeners: new Set(),
  stopRestoring: null, // stops putting kept input back into a redrawn page
};

const els = {};

function homeHash() {
  const role = state.identity && state.identity.principal && state.identity.principal.role;
  const pages = NAV[role];
  return pages ? pageHash(pages[0]) : '#/consultations';
}

/** Goes to `hash` ('#/inbox' or '/inbox'). */
function navigate(hash, { notice } = {}) {
  state.pendingNotice = notice || null;
  const target = hash.startsWith('#') ? hash : `#${hash}`;
  if (window.location.hash === target) route();
  else window.location.hash = target;
}

function showError(error) {
  if (!error) {
    clearError();
    return;
  }
  const text = typeof error === 'string' ? error : describeError(error);
  els.error.dataset.code = (error && error.codeName) || '';
  replace(els.errorText, text);
  els.error.hidden = false;
}

function clearError() {
  els.error.hidden = true;
  els.error.dataset.code = '';
  replace(els.errorText);
}

function showNotice(text) {
  if (!text) {
    els.notice.hidden = true;
    replace(els.notice);
    return;
  }
  replace(els.notice, text);
  els.notice.hidden = false;
}

/** Says `text` to screen readers (polite), e.g. a live update. */
function announce(text) {
  els.live.textContent = '';
  // A fresh text node after a tick makes screen readers read it even if repeated.
  setTimeout(() => {
    els.live.textContent = text;
  }, 50);
}

function context() {
  const identity = state.identity || {};
  return {
    principal: identity.principal || null,
    user: identity.user || null,
    institution: identity.institution || null,
    t,
    tEnum,
    lang: getLanguage(),
    navigate,
    unary,
    serverStream,
    time,
    showError,
    clearError,
    showNotice,
    announce,
    reloadIdentity,
    afterSignIn,
    setTitle,
    /** Called with the new language after a switch; returns unsubscribe. */
    onLanguageChange(callback) {
      state.languageListeners.add(callback);
      return () => state.languageListeners.delete(callback);
    },
  };
}

function setTitle(title) {
  document.title = title ? `${title} · ${t('app.name')}` : t('app.name');
}

function renderHeader() {
  const identity = state.identity;
  replace(els.title, t('app.name'));
  els.langSwitch.textContent = getLanguage() === 'zh' ? 'English' : '中文';
  els.langSwitch.setAttribute('lang', getLanguage() === 'zh' ? 'en' : 'zh-CN');
  els.langSwitch.title = t('header.switchLanguage');
  replace(els.skip, t('header.skip'));
  replace(els.footer, t('footer.timezone'));
  if (!identity) {
    els.who.hidden = true;
    els.signout.hidden = true;
    replace(els.nav);
    els.nav.hidden = true;
    return;
  }
  const { principal, user, institution } = identity;
  replace(
    els.who,
    h('span', { class: 'who-name', testid: 'current-user', 'data-user-id': principal.user_id },
      personName(user) || principal.user_id),
    h('span', { class: 'who-role', testid: 'current-role', 'data-role': principal.role }, tEnum(principal.role)),
    h('span', { class: 'who-inst', testid: 'current-institution', 'data-institution-id': principal.institution_id },
      institutionName(institution) || principal.institution_id),
  );
  els.who.hidden = false;
  els.signout.textContent = t('header.signout');
  els.signout.hidden = false;
  renderNav();
}

function renderNav() {
  const pages = NAV[state.identity && state.identity.principal.role] || [];
  const currentModule = state.current && state.current.module;
  const list = h('ul', {});
  for (const page of pages) {
    const active = currentModule === page;
    list.appendChild(
      h('li', {},
        h('a', {
          href: pageHash(page),
          testid: `nav-${page}`,
          class: active ? 'active' : null,
          'aria-current': active ? 'page' : null,
        }, t(`nav.${page}`))),
    );
  }
  replace(els.nav, list);
  els.nav.setAttribute('aria-label', t('nav.label'));
  els.nav.hidden = pages.length === 0;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch (_) {
    return text;
  }
}

function match(path) {
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (m) return { route: r, params: m.slice(1).filter((p) => p !== undefined).map(safeDecode) };
  }
  return null;
}

function unmountCurrent() {
  if (state.stopRestoring) {
    state.stopRestoring();
    state.stopRestoring = null;
  }
  if (state.current && state.current.unmount) {
    try {
      state.current.unmount();
    } catch (e) {
      console.error('unmount failed', e);
    }
  }
  state.current = null;
}

async function route({ remount = false } = {}) {
  const hash = window.location.hash || '';
  const path = hash.replace(/^#/, '') || '/';
  const token = ++state.navToken;

  if (path === '/' || path === '') {
    window.location.replace(state.identity ? homeHash() : '#/signin');
    return;
  }
  const found = match(path.split('?')[0]);
  if (found && !found.route.public && !state.identity) {
    sessionStorage.setItem(RETURN_KEY, hash);
    window.location.replace('#/signin');
    return;
  }
  const key = hash;
  if (!remount && state.current && state.current.key === key) return;

  unmountCurrent();
  clearError();
  showNotice(state.pendingNotice);
  state.pendingNotice = null;
  const container = els.app;
  replace(container);
  container.className = '';

  if (!found) {
    setTitle(t('page.notFound'));
    replace(container, h('h1', {}, t('page.notFound')), h('p', {}, h('a', { href: homeHash() }, t('page.goHome'))));
    state.current = { module: null, key, unmount: null };
    renderNav();
    return;
  }

  const { route: r, params } = found;
  state.current = { module: r.module, key, unmount: null };
  renderNav();
  container.setAttribute('aria-busy', 'true');
  let mod;
  try {
    mod = await import(`./pages/${r.module}.js`);
  } catch (error) {
    if (token !== state.navToken) return;
    container.removeAttribute('aria-busy');
    showError(t('error.pageLoad', { message: error.message }));
    return;
  }
  if (token !== state.navToken) return;
  container.removeAttribute('aria-busy');
  container.classList.add(`page-${r.module}`);
  // Pages set their own title; this one holds until they do (the room keeps it).
  setTitle(t(`title.${r.module}`));
  try {
    const mount = mod[r.exportName || 'mount'];
    const unmount = mount(container, context(), ...params);
    state.current.unmount = typeof unmount === 'function' ? unmount : null;
  } catch (error) {
    console.error(error);
    showError(error);
  }
  if (!remount && !container.contains(document.activeElement)) {
    // Move focus to the new page so keyboard and screen reader users start there
    // (unless the page put it on its first field already).
    container.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

/** Asks the broker who we are; null when signed out. */
async function reloadIdentity() {
  try {
    state.identity = await unary(DIRECTORY, 'WhoAmI', {});
  } catch (error) {
    if (error.code === Code.UNAUTHENTICATED) state.identity = null;
    else throw error;
  }
  renderHeader();
  return state.identity;
}

/** After signing in: back to where the user was going, or their home page. */
function afterSignIn() {
  const back = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  navigate(back && !back.startsWith('#/signin') && !back.startsWith('#/enroll') ? back : homeHash());
}

async function signOut() {
  try {
    await unary(ACCOUNT, 'SignOut', {});
  } catch (error) {
    // Signed out either way from the console's point of view; the cookie may be gone.
    console.warn('sign-out', error);
  }
  state.identity = null;
  resetDirectory();
  unmountCurrent();
  renderHeader();
  navigate('#/signin');
}

function switchLanguage() {
  setLanguage(getLanguage() === 'zh' ? 'en' : 'zh');
}

function onLanguage(lang) {
  time.setTimeLanguage(lang);
  renderHeader();
  // The live room keeps running; it is told and translates itself. Other pages are
  // simply drawn again.
  if (state.current && state.current.module === 'room') {
    for (const listener of state.languageListeners) listener(lang);
  } else {
    // Keep what the user typed, and the keyboard where it was (on the switch), while
    // the page is drawn again.
    const hadFocus = document.activeElement === els.langSwitch;
    const kept = keepInput(els.app);
    route({ remount: true }).then(() => {
      if (kept.length) state.stopRestoring = restoreInput(els.app, kept);
      if (hadFocus) els.langSwitch.focus();
    });
  }
}

function buildShell() {
  const q = (id) => document.getElementById(id);
  Object.assign(els, {
    app: q('app'),
    title: q('app-title'),
    who: q('who'),
    nav: q('nav'),
    langSwitch: q('lang-switch'),
    signout: q('signout'),
    error: q('error-banner'),
    errorText: q('error-text'),
    errorClose: q('error-close'),
    notice: q('notice-banner'),
    live: q('live'),
    skip: q('skip-link'),
    footer: q('footer-text'),
  });
  els.langSwitch.addEventListener('click', switchLanguage);
  els.signout.addEventListener('click', signOut);
  els.errorClose.addEventListener('click', clearError);
  els.errorClose.setAttribute('aria-label', t('error.close'));
}

async function start() {
  initLanguage();
  time.setTimeLanguage(getLanguage());
  buildShell();
  renderHeader();
  onLanguageChange(onLanguage);
  onUnauthenticated(() => {
    if (!state.identity) return;
    state.identity = null;
    resetDirectory();
    renderHeader();
    sessionStorage.setItem(RETURN_KEY, window.location.hash);
    unmountCurrent();
    navigate('#/signin', { notice: t('signin.expired') });
  });

  for (;;) {
    try {
      await loadSchema();
      await reloadIdentity();
      break;
    } catch (error) {
      // The broker is unreachable or broken: say so, and try again on request.
      showError(t('error.startup', { message: describeError(error) }));
      const retry = h('button', { type: 'button', testid: 'startup-retry' }, t('error.retry'));
      replace(els.app, h('p', {}, retry));
      await new Promise((resolve) => retry.addEventListener('click', resolve, { once: true }));
      clearError();
    }
  }
  window.addEventListener('hashchange', () => route());
  route();
}

start();
