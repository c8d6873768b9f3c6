// End-to-end test of the web console in headless Chromium (Debian's, driven by
// playwright-core) with a fake camera and microphone, against a development broker.
// tests/console_e2e.rs starts the broker and runs this; by hand:
//
//   TELECONSULT_CONSOLE_URL=https://127.0.0.1:7445/ \
//   TELECONSULT_E2E_USERS="$(... JSON of console-demo-users.tsv ...)" \
//   TELECONSULT_E2E_CA=/tmp/room-dev/pki/ca.pem node tests/console/e2e.mjs
//
// Environment:
//   TELECONSULT_CONSOLE_URL     the console's https URL (required)
//   TELECONSULT_E2E_USERS       JSON [{user, password, role, institution}] (required)
//   TELECONSULT_E2E_ARTIFACTS   directory for screenshots (default target/console-e2e)
//   TELECONSULT_E2E_CA          the broker's CA (PEM): the console's certificate is
//                               verified against it and its key pinned in Chromium;
//                               without it certificate errors are ignored
//   TELECONSULT_CHROMIUM        the browser (default /usr/bin/chromium)
//   TELECONSULT_E2E_HEADED=1    show the browser
//   TELECONSULT_E2E_NETNS       the private network namespace (`ip netns`) this runs in,
//                               with the broker: the network-drop step cuts its
//                               loopback with `tc` (never the host's); unset, the step
//                               is skipped
//   TELECONSULT_E2E_NO_NETWORK_DROP  why there is no such namespace (said when skipping)
//
// Every step is logged; the first failure exits 1 naming the step, with a screenshot.
// Every distinct page the flow visits is also checked with axe-core (a test-only
// dependency in package.json, evaluated in the page, never served by the broker): a
// serious or critical violation fails the step; all findings go to accessibility.json.

import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

const consoleUrl = required('TELECONSULT_CONSOLE_URL').replace(/\/?$/, '/');
const users = JSON.parse(required('TELECONSULT_E2E_USERS'));
const artifacts = path.resolve(process.env.TELECONSULT_E2E_ARTIFACTS || 'target/console-e2e');
const chromiumPath = process.env.TELECONSULT_CHROMIUM || '/usr/bin/chromium';
// Where to ask the test harness to kill the broker and start it again (unset: no restart).
const restartDir = process.env.TELECONSULT_E2E_RESTART_DIR;
const started = Date.now();
const DESKTOP = { width: 1280, height: 800 };
const TABLET = { width: 768, height: 1024 };
const MEDIA_TIMEOUT_MS = 30_000;
// The network drop lasts at least NETWORK_DROP_MS, and on until both rooms have been
// `restarting` longer than their grace before asking for an ICE restart (console/js/
// room/session.js), at most NETWORK_DROP_MAX_MS: Chromium calls ICE `disconnected` only
// once 5 s passed without an answer to its checks, which a stable connection sends
// every 2.5 s, so a 6 s drop often goes unnoticed. Then the room has
// RECOVERY_TIMEOUT_MS to be back.
const NETWORK_DROP_MS = 6000;
const NETWORK_DROP_MAX_MS = 25_000;
const ROOM_RESTART_GRACE_MS = 3000;
const RECOVERY_TIMEOUT_MS = 40_000;
// Once recovered, how long media may pause before the room counts as stuck again.
const SETTLED_FLOW_TIMEOUT_MS = 10_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

// ---- logging, steps, screenshots -------------------------------------------

function log(...parts) {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${seconds}s]`, ...parts);
}

let shots = 0;
const pages = new Set();
let currentStep = '(start)';

/** The page needs no sideways scrolling at its window's width (wide tables scroll
 * inside their own box). */
async function fitsWidth(page, name) {
  const { content, window } = await page.evaluate(() => ({
    content: document.documentElement.scrollWidth,
    window: document.documentElement.clientWidth,
  }));
  check(content <= window, `${name}: the page is ${content} px wide in a ${window} px window`);
}

/** Asks the harness to kill the broker (SIGKILL) and start it again on the same data
 *  and ports; resolves once it listens again. */
async function restartBroker() {
  const request = path.join(restartDir, 'broker-restart.request');
  const done = path.join(restartDir, 'broker-restart.done');
  rmSync(done, { force: true });
  writeFileSync(request, '');
  const deadline = Date.now() + 60_000;
  while (!existsSync(done)) {
    if (Date.now() > deadline) throw new Failure('the harness did not restart the broker within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  rmSync(done);
}

async function shot(page, name) {
  await fitsWidth(page, name);
  shots += 1;
  const file = path.join(artifacts, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`  screenshot ${path.basename(file)}`);
  return file;
}

async function step(name, body) {
  currentStep = name;
  const at = Date.now();
  log(`▶ ${name}`);
  const result = await body();
  log(`✔ ${name} (${((Date.now() - at) / 1000).toFixed(1)} s)`);
  return result;
}

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

// ---- people ------------------------------------------------------------------

function pick(predicate, what) {
  const found = users.find(predicate);
  if (!found) throw new Failure(`no demo user for ${what} in TELECONSULT_E2E_USERS`);
  return found;
}

const byId = (id) => (u) => u.user === id;
const nurse = users.find(byId('biru-nurse-dawa')) ?? pick((u) => u.role === 'clinic_staff' && u.user !== 'lhari-pema', 'clinic staff');
const doctor = users.find(byId('zju2-cardio-chen')) ?? pick((u) => u.role === 'doctor', 'a doctor');
const admin = users.find(byId('platform-admin')) ?? pick((u) => u.role === 'admin' && u.institution === 'platform', 'a platform admin');
const interpreter = users.find((u) => u.role === 'interpreter' && u.institution === nurse.institution) ?? pick((u) => u.role === 'interpreter', 'an interpreter');
const lockee = users.find(byId('lhari-pema')) ?? pick((u) => u.role === 'clinic_staff' && u.user !== nurse.user, 'a second clinic staff member');
// People the admin gives a console password (set by the admin, or chosen through an
// enrollment link): anyone the rest of the flow does not sign in as.
const inFlow = (u) => [nurse, doctor, admin, interpreter, lockee].some((p) => p.user === u.user);
const passwordee = users.find(byId('nagqu-tmh-tenzin')) ?? pick((u) => u.role === 'clinic_staff' && !inFlow(u), 'a clinic staff member for SetPassword');
const enrollee = users.find(byId('xagqu-norbu')) ?? pick((u) => u.role === 'clinic_staff' && !inFlow(u) && u.user !== passwordee.user, 'a clinic staff member for enrollment');

// ---- time in Asia/Shanghai (UTC+8, no daylight saving) ------------------------

const SHANGHAI_MS = 8 * 3600 * 1000;

function shanghaiParts(ms) {
  const d = new Date(ms + SHANGHAI_MS);
  const pad = (n) => String(n).padStart(2, '0');
  return {
    date: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
    time: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`,
    weekday: ((d.getUTCDay() + 6) % 7) + 1, // ISO: 1 Monday … 7 Sunday
  };
}

// ---- the browser -------------------------------------------------------------

/** The SPKI pin of the console's certificate, after verifying it against the CA. */
async function pinnedCertificate(url, caFile) {
  const { hostname, port } = new URL(url);
  const ca = readFileSync(caFile);
  const certificate = await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca, servername: hostname === '127.0.0.1' ? undefined : hostname, ALPNProtocols: ['http/1.1'] }, () => {
      const peer = socket.getPeerX509Certificate();
      socket.end();
      resolve(peer);
    });
    socket.on('error', reject);
  });
  check(certificate instanceof X509Certificate, 'the console presented no certificate');
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return { subject: certificate.subject.replace(/\n/g, ', '), pin: createHash('sha256').update(spki).digest('base64') };
}

async function launch() {
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection',
    // Remote sound plays without a click first (the fake devices need no gesture either).
    '--autoplay-policy=no-user-gesture-required',
  ];
  let ignoreHTTPSErrors = true;
  if (process.env.TELECONSULT_E2E_CA) {
    const { subject, pin } = await pinnedCertificate(consoleUrl, process.env.TELECONSULT_E2E_CA);
    log(`console certificate verified against the broker's CA (${subject}); pinned in Chromium`);
    args.push(`--ignore-certificate-errors-spki-list=${pin}`);
    ignoreHTTPSErrors = false;
  } else {
    log('no TELECONSULT_E2E_CA: certificate errors are ignored');
  }
  if (process.env.TELECONSULT_E2E_HEADED) args.splice(args.indexOf('--headless'), 1);
  const browser = await chromium.launch({ executablePath: chromiumPath, args, headless: !process.env.TELECONSULT_E2E_HEADED });
  log(`chromium ${browser.version()} (${chromiumPath})`);
  return { browser, ignoreHTTPSErrors };
}

async function newPage(browser, ignoreHTTPSErrors, who) {
  const context = await browser.newContext({
    ignoreHTTPSErrors,
    viewport: DESKTOP,
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
    permissions: ['camera', 'microphone'],
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') log(`  [${who} console.${message.type()}] ${message.text()}`);
  });
  page.on('pageerror', (error) => log(`  [${who} page error] ${error.message}`));
  page.on('dialog', (dialog) => { log(`  [${who} dialog] ${dialog.message()}`); dialog.accept(); });
  page.who = who;
  pages.add(page);
  return page;
}

const tid = (id) => `[data-testid="${id}"]`;

async function goto(page, hash) {
  await page.goto(new URL(hash, consoleUrl).href);
}

async function signIn(page, user, password) {
  await goto(page, '#/signin');
  await page.locator(tid('signin-form')).waitFor();
  await page.locator(tid('signin-user')).fill(user);
  await page.locator(tid('signin-password')).fill(password);
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/teleconsult.v1.AccountService/SignIn')),
    page.locator(tid('signin-submit')).click(),
  ]);
}

/** Signs in with the keyboard alone: the page starts in the user field, Tab moves to
 * the password, Enter submits. */
async function signInByKeyboard(page, person) {
  await goto(page, '#/signin');
  // A fresh page, as a user arriving has (not one left after an earlier attempt).
  await page.reload();
  await page.locator(tid('signin-form')).waitFor();
  const focused = await page.evaluate(() => document.activeElement?.dataset.testid);
  check(focused === 'signin-user', `the sign-in page starts with the keyboard on ${focused}, not the user field`);
  await page.keyboard.type(person.user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(person.password);
  await page.keyboard.press('Enter');
  await page.locator(`${tid('current-user')}[data-user-id="${person.user}"]`).waitFor();
}

async function signInOk(page, person) {
  await signIn(page, person.user, person.password);
  await page.locator(`${tid('current-user')}[data-user-id="${person.user}"]`).waitFor();
}

async function signInError(page) {
  const error = page.locator(tid('signin-error'));
  await error.waitFor({ state: 'visible' });
  return { code: await error.getAttribute('data-code'), text: (await error.textContent()).trim() };
}

/** Calls the broker from the page, with the page's own session and gRPC-Web client. */
async function call(page, service, method, request) {
  return page.evaluate(async ([s, m, r]) => {
    const { unary } = await import('/js/grpcweb.js');
    return unary(s, m, r);
  }, [service, method, request]);
}

// ---- accessibility (axe-core) ---------------------------------------------------

let axeSource = null;
const accessibilityReport = [];
const BLOCKING_IMPACTS = new Set(['serious', 'critical']);

function axe() {
  if (axeSource === null) {
    let file;
    try {
      file = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
    } catch {
      throw new Failure('axe-core is not installed: run `npm ci` in tests/console (it is in package-lock.json)');
    }
    axeSource = readFileSync(file, 'utf8');
  }
  return axeSource;
}

/**
 * Runs axe-core on what `page` shows now (`name` says which page) and fails on
 * serious or critical violations, printing them. The CSP forbids inline scripts, so
 * axe is evaluated through the DevTools protocol rather than added as a <script>.
 */
async function accessibility(page, name) {
  if (await page.evaluate(() => typeof window.axe === 'undefined')) await page.evaluate(axe());
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return {
      version: r.testEngine.version,
      passes: r.passes.length,
      incomplete: r.incomplete.length,
      violations: r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html.slice(0, 300), summary: n.failureSummary })),
      })),
    };
  });
  accessibilityReport.push({ page: name, who: page.who, url: page.url(), ...result });
  const blocking = result.violations.filter((v) => BLOCKING_IMPACTS.has(v.impact));
  const others = result.violations.filter((v) => !BLOCKING_IMPACTS.has(v.impact));
  log(`  axe ${result.version} on ${name}: ${result.passes} rules pass, ${result.violations.length} violated` +
    (result.violations.length ? ` (${result.violations.map((v) => `${v.id}: ${v.impact}`).join(', ')})` : ''));
  for (const v of [...blocking, ...others]) {
    log(`    ${v.impact} ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const n of v.nodes.slice(0, 5)) log(`      ${n.target}: ${n.summary.replace(/\s+/g, ' ')}`);
  }
  check(blocking.length === 0, `${page.who}: ${name}: ${blocking.length} serious or critical accessibility violation(s): ${blocking.map((v) => `${v.id} (${v.nodes.length} node(s))`).join(', ')}`);
}

// ---- the room ------------------------------------------------------------------------

async function roomStats(page) {
  return page.evaluate(() => (window.__teleconsultRoom ? window.__teleconsultRoom.stats() : null));
}

/** Polls until `page` has decoded video and received audio from `publisher`. */
async function mediaFrom(page, publisher) {
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let last = null;
  while (Date.now() < deadline) {
    last = await roomStats(page);
    const from = last?.byPublisher?.[publisher];
    if (from && from.videoFramesDecoded > 0 && from.audioPacketsReceived > 0) {
      // Both kinds flowing: wait a little more, so that the numbers say "a stream".
      await page.waitForTimeout(3000);
      return roomStats(page);
    }
    await page.waitForTimeout(1000);
  }
  throw new Failure(`${page.who}: no video frames decoded and audio received from ${publisher} within ${MEDIA_TIMEOUT_MS / 1000} s; last stats: ${JSON.stringify(last)}`);
}

function summary(stats, publisher) {
  const from = stats.byPublisher[publisher];
  return `from ${publisher}: ${from.videoFramesDecoded} video frames decoded (${from.videoPacketsReceived} packets, ${from.videoBytesReceived} bytes), ` +
    `${from.audioPacketsReceived} audio packets (${from.audioBytesReceived} bytes, ${from.audioSamplesReceived} samples); ` +
    `ICE ${stats.iceConnectionState} via ${stats.selectedCandidatePair?.local} → ${stats.selectedCandidatePair?.remote}, ` +
    `RTT ${stats.selectedCandidatePair?.currentRoundTripTime}`;
}

async function waitForFrames(page, publisher, beyond, what) {
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let from = null;
  while (Date.now() < deadline) {
    const stats = await roomStats(page);
    from = stats?.byPublisher?.[publisher];
    if (from && from.videoFramesDecoded > beyond) return from;
    await page.waitForTimeout(1000);
  }
  throw new Failure(`${page.who}: ${what}: no new video frames from ${publisher} (last ${JSON.stringify(from)})`);
}

// ---- the network (a qdisc on the namespace's loopback) --------------------------------

const run = promisify(execFile);

/** Why the network cannot be cut here, or null. Only inside the private network
 *  namespace tests/console_e2e.rs made for the broker and the browser: a qdisc on
 *  the host's loopback would cut every other process's too. */
async function networkDropUnavailable() {
  const namespace = process.env.TELECONSULT_E2E_NETNS;
  if (!namespace) return process.env.TELECONSULT_E2E_NO_NETWORK_DROP || 'not run in a private network namespace (TELECONSULT_E2E_NETNS is not set)';
  try {
    const { stdout } = await run('ip', ['netns', 'identify', String(process.pid)]);
    if (!stdout.split(/\s+/).includes(namespace)) return `this process is not in network namespace ${namespace} (ip netns identify: ${stdout.trim() || 'none'})`;
  } catch (error) {
    return `ip netns identify failed: ${error.message.trim()}`;
  }
  return null;
}

// A token bucket of 1 kbit/s with a 1 ms queue: nearly every packet on the loopback
// (UDP media, ICE checks, the console's TCP) is dropped. netem is not needed.
const CUT = ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1kbit', 'burst', '1600', 'latency', '1ms'];
const RESTORE = ['qdisc', 'del', 'dev', 'lo', 'root'];

async function tc(args) {
  try {
    await run('tc', args);
  } catch (error) {
    throw new Failure(`tc ${args.join(' ')}: ${(error.stderr || error.message).trim()}`);
  }
}

/** Starts noting, every 50 ms, where `page`'s room is: its status line, ICE state,
 *  session generation (bumped by every `Open`) and the broker's ICE ufrag (new after
 *  an ICE restart). `roomHistory` reads the notes. */
async function recordRoom(page) {
  await page.evaluate(() => {
    clearInterval(window.__e2eRoomTimer);
    const notes = [];
    window.__e2eRoomNotes = notes;
    let last = '';
    const note = () => {
      const room = window.__teleconsultRoom;
      const sdp = room?.pc?.remoteDescription?.sdp ?? '';
      const now = {
        status: document.querySelector('[data-testid="room-status"]')?.dataset.state ?? null,
        ice: room?.pc?.iceConnectionState ?? 'none',
        generation: room?.generation ?? null,
        ufrag: /a=ice-ufrag:(\S+)/.exec(sdp)?.[1] ?? null,
      };
      const key = JSON.stringify(now);
      if (key !== last) notes.push({ at: Date.now(), ...now });
      last = key;
    };
    note();
    window.__e2eRoomTimer = setInterval(note, 50);
  });
}

async function roomHistory(page) {
  return page.evaluate(() => {
    clearInterval(window.__e2eRoomTimer);
    return window.__e2eRoomNotes ?? [];
  });
}

/** The counters of media from `publisher` with the session generation they belong to
 *  (a new `Open` is a new peer connection, whose counters start again from zero). */
async function mediaCounters(page, publisher) {
  return page.evaluate(async (p) => {
    const room = window.__teleconsultRoom;
    if (!room) return null;
    const generation = room.generation;
    const from = (await room.stats()).byPublisher[p];
    return { generation, video: from?.videoFramesDecoded ?? 0, audio: from?.audioPacketsReceived ?? 0 };
  }, publisher);
}

/** Media from `publisher` that arrived after `since` (counters from `mediaCounters`). */
function mediaSince(now, since) {
  const fresh = now.generation !== since.generation;
  return { video: fresh ? now.video : now.video - since.video, audio: fresh ? now.audio : now.audio - since.audio };
}

/** How the room came back, from its notes: opened again (a new generation), ICE
 *  restarted on the same connection (a new ufrag of the broker's), or neither (ICE
 *  came back by itself before the room asked for a restart). Times are from
 *  `restoredAt`, when the network came back. */
function recovery(notes, restoredAt) {
  const seconds = (at) => `${at < restoredAt ? '' : '+'}${((at - restoredAt) / 1000).toFixed(1)} s`;
  const first = notes[0];
  const reopened = notes.find((n) => n.generation !== first.generation);
  if (reopened) return { path: 're-Open', detail: `the session was opened again (generation ${first.generation} → ${notes.at(-1).generation}, first at ${seconds(reopened.at)})` };
  const restarted = notes.find((n) => n.ufrag && first.ufrag && n.ufrag !== first.ufrag);
  if (!restarted) return { path: 'ICE recovered by itself', detail: 'same peer connection and ICE credentials: no restart happened' };
  const iceBack = notes.find((n) => n.at >= restoredAt && n.ice === 'connected');
  const order = iceBack && iceBack.at < restarted.at
    ? `; ICE answered again on the old credentials at ${seconds(iceBack.at)}, before the restart took effect`
    : '';
  return { path: 'ICE restart', detail: `same peer connection, the broker's ICE ufrag ${first.ufrag} → ${restarted.ufrag} at ${seconds(restarted.at)}${order}` };
}

/** The notes as a line: `status/ice` at seconds from `origin`, with a new generation
 *  (`Open`) or a new ICE ufrag of the broker's (an ICE restart) marked. */
function transitions(notes, origin) {
  return notes.map((n, i) => {
    const before = notes[i - 1];
    const marks = [];
    if (before && n.generation !== before.generation) marks.push(`generation ${n.generation}`);
    else if (before && n.ufrag && before.ufrag && n.ufrag !== before.ufrag) marks.push(`new ufrag ${n.ufrag}`);
    return `${((n.at - origin) / 1000).toFixed(1)}s ${n.status}/${n.ice}${marks.length ? ` (${marks.join(', ')})` : ''}`;
  }).join(' → ');
}

/** Since when `page`'s room has been away from `connected` after noticing a drop
 *  (`restarting`, or `reconnecting` and `connecting` again), or null. */
async function troubledSince(page) {
  return page.evaluate(() => {
    const notes = window.__e2eRoomNotes ?? [];
    let since = null;
    let noticed = false;
    for (const n of notes) {
      if (n.status === 'connected') {
        since = null;
        noticed = false;
        continue;
      }
      since ??= n.at;
      noticed ||= n.status === 'restarting' || n.status === 'reconnecting';
    }
    return noticed ? since : null;
  });
}

/** The broker's ICE agent state changes logged between `from` and `to` (ms). */
function brokerIceStates(from, to) {
  let text;
  try {
    text = readFileSync(path.join(artifacts, 'broker.log'), 'utf8');
  } catch {
    return [];
  }
  const states = [];
  for (const line of text.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const m = /^(\S+Z)\s.*rtc_ice::agent.*Setting new connection state: (\w+)/.exec(line);
    if (!m) continue;
    const at = Date.parse(m[1]);
    if (at >= from && at <= to) states.push({ at, state: m[2] });
  }
  return states;
}

// ---- the flow ------------------------------------------------------------------

async function main() {
  mkdirSync(artifacts, { recursive: true });
  log(`console ${consoleUrl}; screenshots in ${artifacts}`);
  log(`nurse ${nurse.user}, doctor ${doctor.user}, interpreter ${interpreter.user}, admin ${admin.user}, lockout ${lockee.user}`);
  const { browser, ignoreHTTPSErrors } = await launch();
  const results = {};
  try {
    const nursePage = await newPage(browser, ignoreHTTPSErrors, 'nurse');
    const doctorPage = await newPage(browser, ignoreHTTPSErrors, 'doctor');

    await step('sign-in page and a wrong password', async () => {
      await goto(nursePage, '#/signin');
      await nursePage.locator(tid('signin-form')).waitFor();
      await shot(nursePage, 'signin');
      await accessibility(nursePage, 'sign-in');
      await signIn(nursePage, nurse.user, `${nurse.password}-wrong`);
      const { code, text } = await signInError(nursePage);
      check(code === 'UNAUTHENTICATED', `a wrong password shows ${code} (${text}), not UNAUTHENTICATED`);
      log(`  wrong password refused: ${code}: ${text}`);
      await shot(nursePage, 'signin-wrong-password');
    });

    await step(`five wrong passwords lock ${lockee.user}`, async () => {
      const page = await newPage(browser, ignoreHTTPSErrors, 'lockout');
      const codes = [];
      for (let i = 1; i <= 5; i += 1) {
        await signIn(page, lockee.user, `not-the-password-${i}`);
        const { code } = await signInError(page);
        codes.push(code);
      }
      log(`  wrong attempts answered: ${codes.join(', ')}`);
      await signIn(page, lockee.user, lockee.password);
      const { code, text } = await signInError(page);
      check(code === 'PERMISSION_DENIED', `the right password after 5 failures shows ${code} (${text}), not the lockout (PERMISSION_DENIED)`);
      check(/lock|锁/i.test(text), `the lockout message does not say the account is locked: ${text}`);
      log(`  right password refused while locked: ${code}: ${text}`);
      await shot(page, 'signin-locked');
      await page.context().close();
      pages.delete(page);
    });

    await step('nurse and doctor sign in', async () => {
      await signInByKeyboard(nursePage, nurse);
      await nursePage.locator(`${tid('consultations-table')}, ${tid('consultations-empty')}`).first().waitFor({ state: 'attached' });
      await shot(nursePage, 'nurse-home');
      await accessibility(nursePage, 'consultations');
      await signInOk(doctorPage, doctor);
      await shot(doctorPage, 'doctor-home');
    });

    await step('the console starts in Chinese and switches to English and back', async () => {
      const nav = nursePage.locator(tid('nav-consultations'));
      const chinese = (await nav.textContent()).trim();
      if (chinese !== '会诊列表') throw new Error(`the console did not start in Chinese: nav says ${chinese}`);
      await nursePage.locator(tid('lang-switch')).click();
      await nursePage.waitForFunction(() => document.documentElement.lang === 'en');
      const english = (await nav.textContent()).trim();
      if (english !== 'Consultations') throw new Error(`after switching, nav says ${english}`);
      await shot(nursePage, 'nurse-home-english');
      await accessibility(nursePage, 'consultations (English)');
      await nursePage.locator(tid('lang-switch')).click();
      await nursePage.waitForFunction(() => document.documentElement.lang === 'zh-CN');
      log(`  nav: ${chinese} → ${english} → ${(await nav.textContent()).trim()}`);
    });

    await step('a doctor opening the admin audit page is refused by the API', async () => {
      await goto(doctorPage, '#/audit');
      // The navigation offers no audit page to a doctor; opened by its address, the
      // page asks the broker, which refuses.
      await doctorPage.locator(tid('audit-form')).waitFor();
      check(await doctorPage.locator(tid('nav-audit')).count() === 0, 'the navigation offers the audit page to a doctor');
      const banner = doctorPage.locator(tid('error-banner'));
      await doctorPage.locator(tid('audit-query-submit')).click();
      await banner.waitFor({ state: 'visible' });
      const code = await banner.getAttribute('data-code');
      const text = (await doctorPage.locator(tid('error-text')).textContent()).trim();
      check(code === 'PERMISSION_DENIED', `the doctor's audit query shows ${code} (${text}), not PERMISSION_DENIED`);
      log(`  refused by the broker: ${code}: ${text}`);
      // The same call straight from the page: the server refuses it, not only the UI.
      const direct = await doctorPage.evaluate(async () => {
        const { unary } = await import('/js/grpcweb.js');
        try {
          await unary('teleconsult.v1.AuditService', 'Query', {});
          return { ok: true };
        } catch (e) {
          return { code: e.codeName, message: e.message };
        }
      });
      check(direct.code === 'PERMISSION_DENIED', `AuditService/Query as a doctor answered ${JSON.stringify(direct)}`);
      log(`  AuditService/Query from the doctor's page: ${direct.code}: ${direct.message}`);
      await shot(doctorPage, 'doctor-audit-denied');
      await doctorPage.locator(tid('error-close')).click().catch(() => {});
    });

    const specialist = await step('look up the doctor\'s specialty', async () => {
      const s = await call(nursePage, 'teleconsult.v1.DirectoryService', 'GetSpecialist', { user_id: doctor.user });
      check(s.specialties?.length > 0, `${doctor.user} has no specialty`);
      log(`  ${doctor.user}: ${s.specialties.join(', ')} at ${s.institution_id}`);
      return s;
    });
    const specialty = specialist.specialties[0];

    // The first slot starts at a 5-minute mark at least 90 s away (sessions open 15
    // minutes before their start), so that it is still ahead when the nurse books it.
    const slotStart = Math.ceil((Date.now() + 90_000) / 300_000) * 300_000;
    const slotLocal = shanghaiParts(slotStart);
    const slotEndLocal = shanghaiParts(slotStart + 60 * 60_000);

    await step(`doctor publishes availability from ${slotLocal.date} ${slotLocal.time} (Asia/Shanghai)`, async () => {
      await goto(doctorPage, '#/availability');
      await doctorPage.locator(`${tid('availability-form')}[data-loaded="true"]`).waitFor();
      // One interval only (a broker reused by hand may hold earlier ones).
      while (await doctorPage.locator(tid('availability-remove-0')).count()) await doctorPage.locator(tid('availability-remove-0')).click();
      await doctorPage.locator(tid('availability-add')).click();
      const i = 0;
      await doctorPage.locator(tid(`availability-weekday-${i}`)).selectOption(String(slotLocal.weekday));
      await doctorPage.locator(tid(`availability-start-${i}`)).fill(slotLocal.time);
      await doctorPage.locator(tid(`availability-end-${i}`)).fill(slotEndLocal.time);
      const autoAccept = doctorPage.locator(tid('availability-auto-accept'));
      if (await autoAccept.isChecked()) await autoAccept.uncheck();
      await shot(doctorPage, 'doctor-availability');
      await accessibility(doctorPage, 'availability');
      await doctorPage.locator(tid('availability-save')).click();
      await doctorPage.locator(tid('availability-saved')).waitFor({ state: 'visible' });
      await shot(doctorPage, 'doctor-availability-saved');
    });

    await step('doctor opens the live inbox', async () => {
      await goto(doctorPage, '#/inbox');
      await doctorPage.locator(tid('inbox-list')).waitFor({ state: 'attached' });
      await doctorPage.locator(`${tid('live-status')}[data-status="live"]`).waitFor().catch(() => log('  (no live-status "live" shown)'));
    });

    const consultationId = await step(`nurse finds ${specialty} slots on ${slotLocal.date} and books the first of ${doctor.user}`, async () => {
      await goto(nursePage, '#/find');
      await nursePage.locator(tid('slot-search-form')).waitFor();
      await nursePage.locator(tid('slot-search-specialty')).fill(specialty);
      await nursePage.locator(tid('slot-search-date')).fill(slotLocal.date);
      await nursePage.locator(tid('slot-search-submit')).click();
      await nursePage.locator(`${tid('slot-table')}, ${tid('slot-empty')}`).first().waitFor();
      const slot = nursePage.locator(`button[data-testid^="slot-"][data-doctor-id="${doctor.user}"]`).first();
      check(await slot.count() > 0, `no slot of ${doctor.user} found for ${specialty} on ${slotLocal.date}`);
      const start = Number(await slot.getAttribute('data-start'));
      log(`  first slot of ${doctor.user}: ${new Date(start * 1000).toISOString()} (${shanghaiParts(start * 1000).time} Shanghai)`);
      check(start * 1000 - Date.now() < 15 * 60_000, 'the first slot does not open within 15 minutes');
      await shot(nursePage, 'nurse-find-slots');
      await slot.click();
      await nursePage.locator(tid('book-form')).waitFor();
      await nursePage.locator(tid('book-patient-ref')).fill(`E2E-${Date.now().toString(36)}`);
      await nursePage.locator(tid('book-specialty')).fill(specialty);
      await nursePage.locator(tid('book-reason')).fill('Chest pain at 4,500 m; ECG attached (e2e test).');
      await nursePage.locator(tid('book-case-summary')).fill('58-year-old herder, exertional chest pain for two weeks.');
      await shot(nursePage, 'nurse-book');
      await accessibility(nursePage, 'find and book');
      await nursePage.locator(tid('book-submit')).click();
      await nursePage.waitForURL(/#\/consultation\/[^/]+$/);
      const id = decodeURIComponent(new URL(nursePage.url()).hash.split('/').pop());
      await nursePage.locator(tid('consultation-detail')).waitFor();
      log(`  booked consultation ${id}`);
      await shot(nursePage, 'nurse-consultation-requested');
      await accessibility(nursePage, 'consultation detail (requested)');
      return id;
    });

    await step('doctor accepts it from the live inbox', async () => {
      const item = doctorPage.locator(tid(`inbox-item-${consultationId}`));
      await item.waitFor({ timeout: 30_000 });
      await shot(doctorPage, 'doctor-inbox');
      await accessibility(doctorPage, 'inbox');
      await doctorPage.locator(tid(`accept-${consultationId}`)).click();
      await doctorPage.locator(tid(`inbox-accepted-${consultationId}`)).waitFor();
      await shot(doctorPage, 'doctor-inbox-accepted');
    });

    await step('nurse sees it scheduled (live) and records consent', async () => {
      await nursePage.locator(`${tid('consultation-state')}[data-state="CONSULTATION_STATE_SCHEDULED"]`).first().waitFor({ timeout: 30_000 });
      await nursePage.locator(tid('consent-form')).waitFor();
      await accessibility(nursePage, 'consultation detail (consent form)');
      await nursePage.locator(tid('consent-consenter')).selectOption('CONSENTER_PATIENT');
      await nursePage.locator(tid('consent-method')).selectOption('METHOD_WRITTEN');
      await nursePage.locator(tid('consent-confirm')).check();
      await nursePage.locator(tid('consent-submit')).click();
      await nursePage.locator(`${tid('consent-status')}[data-recorded="true"]`).waitFor();
      await shot(nursePage, 'nurse-consent-recorded');
    });

    await step("the nurse's pages on a tablet", async () => {
      await nursePage.setViewportSize(TABLET);
      await shot(nursePage, 'tablet-consultation');
      await goto(nursePage, '#/consultations');
      await nursePage.locator(tid('consultations-table')).waitFor();
      await shot(nursePage, 'tablet-consultations');
      await goto(nursePage, '#/find');
      await nursePage.locator(tid('slot-search-form')).waitFor();
      await shot(nursePage, 'tablet-find');
      await nursePage.setViewportSize(DESKTOP);
      await goto(nursePage, `#/consultation/${consultationId}`);
      await nursePage.locator(tid('join-session')).waitFor();
    });

    await step('nurse and doctor join the room', async () => {
      await nursePage.locator(tid('join-session')).click();
      await nursePage.waitForURL(/#\/room\//);
      await goto(doctorPage, `#/consultation/${consultationId}`);
      await doctorPage.locator(tid('join-session')).click();
      await doctorPage.waitForURL(/#\/room\//);
      for (const page of [nursePage, doctorPage]) {
        await page.locator(`${tid('room-status')}[data-state="connected"]`).waitFor({ timeout: 30_000 });
      }
    });

    await step('each side decodes video and receives audio from the other through the SFU', async () => {
      const [atNurse, atDoctor] = await Promise.all([mediaFrom(nursePage, doctor.user), mediaFrom(doctorPage, nurse.user)]);
      log(`  nurse  ${summary(atNurse, doctor.user)}`);
      log(`  doctor ${summary(atDoctor, nurse.user)}`);
      results.nurse = atNurse.byPublisher[doctor.user];
      results.doctor = atDoctor.byPublisher[nurse.user];
      for (const page of [nursePage, doctorPage]) {
        const quality = await page.locator(tid('room-quality')).getAttribute('data-quality');
        log(`  ${page.who} quality indicator: ${quality} (${(await page.locator(tid('room-quality')).textContent()).trim()})`);
        check(quality === 'good' || quality === 'fair', `${page.who}: quality indicator says ${quality} on a loopback link`);
        check(await page.locator(`${tid('room-tile')}[data-user]`).count() === 2, `${page.who}: not two tiles`);
      }
      await shot(nursePage, 'room-nurse');
      await shot(doctorPage, 'room-doctor');
      await accessibility(nursePage, 'room');
      await nursePage.setViewportSize(TABLET);
      await nursePage.waitForTimeout(500);
      await shot(nursePage, 'room-nurse-tablet');
      await nursePage.setViewportSize(DESKTOP);
    });

    await step('a mute is shown on the other side', async () => {
      await nursePage.locator(tid('room-mute')).click();
      await doctorPage.locator(`${tid('room-tile')}[data-user="${nurse.user}"][data-audio-muted="true"]`).waitFor({ timeout: 10_000 });
      await shot(doctorPage, 'room-doctor-sees-nurse-muted');
      await nursePage.locator(tid('room-mute')).click();
      await doctorPage.locator(`${tid('room-tile')}[data-user="${nurse.user}"][data-audio-muted="false"]`).waitFor({ timeout: 10_000 });
      // The camera the same way.
      await nursePage.locator(tid('room-camera')).click();
      await nursePage.locator(`${tid('room-camera')}[aria-pressed="true"]`).waitFor();
      await doctorPage.locator(`${tid('room-tile')}[data-user="${nurse.user}"][data-video-muted="true"]`).waitFor({ timeout: 10_000 });
      await shot(doctorPage, 'room-doctor-sees-nurse-camera-off');
      await nursePage.locator(tid('room-camera')).click();
      await doctorPage.locator(`${tid('room-tile')}[data-user="${nurse.user}"][data-video-muted="false"]`).waitFor({ timeout: 10_000 });
      const frames = (await roomStats(doctorPage)).byPublisher[nurse.user].videoFramesDecoded;
      await waitForFrames(doctorPage, nurse.user, frames, 'the nurse camera back on');
    });

    await step('audio only: the doctor stops receiving video, and gets it back', async () => {
      const before = (await roomStats(doctorPage)).byPublisher[nurse.user];
      await doctorPage.locator(tid('room-audio-only')).click();
      await doctorPage.locator(`${tid('room-audio-only')}[aria-pressed="true"]`).waitFor();
      // The answer to the fresh offer refuses the video; the broker stops forwarding it.
      await doctorPage.waitForTimeout(6000);
      const a = (await roomStats(doctorPage)).byPublisher[nurse.user];
      await doctorPage.waitForTimeout(4000);
      const b = (await roomStats(doctorPage)).byPublisher[nurse.user];
      log(`  video packets from ${nurse.user} during 4 s of audio only: ${b.videoPacketsReceived - a.videoPacketsReceived}; audio packets: ${b.audioPacketsReceived - a.audioPacketsReceived}`);
      check(b.audioPacketsReceived > a.audioPacketsReceived, 'audio stopped in audio-only mode');
      check(b.videoPacketsReceived - a.videoPacketsReceived <= 5, 'video kept arriving in audio-only mode');
      await nursePage.locator(`${tid('room-tile')}[data-user="${doctor.user}"][data-video-muted="true"]`).waitFor({ timeout: 10_000 });
      await shot(doctorPage, 'room-doctor-audio-only');
      await doctorPage.locator(tid('room-audio-only')).click();
      await doctorPage.locator(`${tid('room-status')}[data-state="connected"]`).waitFor({ timeout: 30_000 });
      const again = await waitForFrames(doctorPage, nurse.user, b.videoFramesDecoded, 'after audio only');
      log(`  video back: ${again.videoFramesDecoded} frames decoded (was ${before.videoFramesDecoded} before audio only)`);
      await waitForFrames(nursePage, doctor.user, (await roomStats(nursePage)).byPublisher[doctor.user].videoFramesDecoded, 'doctor camera back');
    });

    await step('the nurse\'s network drops and the room reconnects by itself', async () => {
      const generation = await nursePage.evaluate(() => window.__teleconsultRoom.generation);
      // Offline for the page's HTTP (the gRPC-Web stream breaks); WebRTC's own
      // sockets are not affected by this emulation, so the stream is also cut by hand
      // should the emulation leave it open.
      await nursePage.context().setOffline(true);
      await nursePage.waitForTimeout(3000);
      const broke = await nursePage.evaluate((g) => window.__teleconsultRoom.generation > g || document.querySelector('[data-testid="room-status"]').dataset.state === 'reconnecting', generation);
      log(`  offline for 3 s: ${broke ? 'the signaling stream broke' : 'the stream survived the emulation; cutting it'}`);
      if (!broke) await nursePage.evaluate(() => window.__teleconsultRoom.dropSignaling());
      await nursePage.context().setOffline(false);
      await nursePage.locator(`${tid('room-status')}[data-state="reconnecting"]`).waitFor({ timeout: 5000 }).catch(() => {});
      await nursePage.waitForFunction((g) => window.__teleconsultRoom.generation > g, generation);
      await nursePage.locator(`${tid('room-status')}[data-state="connected"]`).waitFor({ timeout: 30_000 });
      const atNurse = await mediaFrom(nursePage, doctor.user);
      const atDoctor = await waitForFrames(doctorPage, nurse.user, 0, 'after the nurse reconnected');
      log(`  after reconnecting: nurse ${summary(atNurse, doctor.user)}`);
      log(`  doctor decodes ${atDoctor.videoFramesDecoded} frames from the nurse's new connection`);
      await shot(nursePage, 'room-nurse-reconnected');
    });

    let networkDrop = null;
    await step('the network drops (media, ICE and signaling) until both rooms notice, and the room recovers by itself', async () => {
      const unavailable = await networkDropUnavailable();
      if (unavailable) {
        networkDrop = { skipped: unavailable };
        log(`  SKIPPED network drop: ${unavailable}`);
        return;
      }
      const sides = [
        { page: nursePage, other: doctor.user },
        { page: doctorPage, other: nurse.user },
      ];
      for (const side of sides) await recordRoom(side.page);
      for (const side of sides) side.before = await mediaCounters(side.page, side.other);
      const cutAt = Date.now();
      let restoredAt;
      try {
        await tc(CUT);
      } catch (error) {
        networkDrop = { skipped: error.message };
        log(`  SKIPPED network drop: ${error.message}`);
        return;
      }
      try {
        log(`  tc ${CUT.join(' ')} (in network namespace ${process.env.TELECONSULT_E2E_NETNS})`);
        await nursePage.waitForTimeout(NETWORK_DROP_MS);
        // On until both rooms asked for an ICE restart (or gave up on ICE).
        while (Date.now() - cutAt < NETWORK_DROP_MAX_MS) {
          const since = await Promise.all(sides.map((side) => troubledSince(side.page)));
          if (since.every((at) => at !== null && Date.now() - at > ROOM_RESTART_GRACE_MS + 500)) break;
          await nursePage.waitForTimeout(250);
        }
        for (const side of sides) side.atRestore = await mediaCounters(side.page, side.other);
      } finally {
        await tc(RESTORE);
        restoredAt = Date.now();
      }
      log(`  network back after ${((restoredAt - cutAt) / 1000).toFixed(1)} s`);
      for (const { page, other, before, atRestore } of sides) {
        const during = mediaSince(atRestore, before);
        log(`  ${page.who} during the drop: ${during.video} video frames decoded, ${during.audio} audio packets from ${other}`);
      }

      // Back: connected on both sides, with media that arrived after the drop.
      const deadline = restoredAt + RECOVERY_TIMEOUT_MS;
      await Promise.all(sides.map(async (side) => {
        const { page, other, atRestore } = side;
        while (true) {
          const now = await mediaCounters(page, other);
          const after = mediaSince(now, atRestore);
          const state = await page.locator(tid('room-status')).getAttribute('data-state');
          if (state === 'connected' && after.video >= 10 && after.audio >= 25) {
            side.recoveredAt = Date.now();
            side.settled = now;
            return;
          }
          if (Date.now() > deadline) {
            const notes = await roomHistory(page);
            throw new Failure(`${page.who}: ${RECOVERY_TIMEOUT_MS / 1000} s after the network came back the room is ${state}, with ${after.video} video frames and ${after.audio} audio packets from ${other} since; ${transitions(notes, cutAt)}`);
          }
          await page.waitForTimeout(250);
        }
      }));
      // A moment more, so that the connection that carries the media is the settled one.
      await nursePage.waitForTimeout(2000);
      // Media goes on flowing on it. After a drop the sender's congestion control may
      // hold video back for a moment (a short freeze, as in any call); it must resume.
      for (const side of sides) {
        const flowing = () => mediaCounters(side.page, side.other)
          .then((now) => mediaSince(now, side.settled))
          .then((lately) => lately.video > 0 && lately.audio > 0);
        const until = Date.now() + SETTLED_FLOW_TIMEOUT_MS;
        while (!(await flowing()) && Date.now() < until) await side.page.waitForTimeout(250);
      }
      networkDrop = { milliseconds: restoredAt - cutAt, sides: {} };
      for (const side of sides) {
        const { page, other, before, atRestore, settled } = side;
        const notes = await roomHistory(page);
        const states = new Set(notes.map((n) => n.status));
        const last = notes.at(-1);
        const how = recovery(notes, restoredAt);
        const now = await mediaCounters(page, other);
        const after = mediaSince(now, atRestore);
        const lately = mediaSince(now, settled);
        // The start of the last stretch of `connected`: when the room was back.
        let back = notes.length - 1;
        while (back > 0 && notes[back - 1].status === 'connected') back -= 1;
        log(`  ${page.who}: ${how.path}: ${how.detail}; connected again ${((notes[back].at - restoredAt) / 1000).toFixed(1)} s after the network came back, new media seen ${((side.recoveredAt - restoredAt) / 1000).toFixed(1)} s after`);
        log(`    ${transitions(notes, cutAt)}`);
        log(`    from ${other}: before ${before.video} frames / ${before.audio} audio packets (generation ${before.generation}); ` +
          `at the end of the drop ${atRestore.video} / ${atRestore.audio}; now ${now.video} / ${now.audio} (generation ${now.generation}): ` +
          `${after.video} frames and ${after.audio} packets since the network came back`);
        check(states.has('restarting') || states.has('reconnecting'), `${page.who}: the room never noticed the drop (status ${[...states].join(', ')})`);
        check(last.status === 'connected' && ['connected', 'completed'].includes(last.ice), `${page.who}: the room ended ${last.status}, ICE ${last.ice}`);
        // Still flowing on the connection the room settled on (after any restart).
        check(lately.video > 0 && lately.audio > 0, `${page.who}: media from ${other} stopped again after the recovery (${lately.video} frames, ${lately.audio} audio packets in the ${((Date.now() - side.recoveredAt) / 1000).toFixed(1)} s since)`);
        networkDrop.sides[page.who] = { recovery: how, transitions: notes.map((n) => ({ ...n, at: n.at - cutAt })), before, atRestore, after: now };
      }
      const broker = brokerIceStates(cutAt - 1000, Date.now());
      log(`  the broker's ICE agents meanwhile: ${broker.map((b) => `${((b.at - cutAt) / 1000).toFixed(1)}s ${b.state}`).join(' → ') || 'no change logged'}`);
      networkDrop.brokerIce = broker.map((b) => ({ ...b, at: b.at - cutAt }));
      results.networkDrop = networkDrop;
      await shot(nursePage, 'room-nurse-after-network-drop');
      await shot(doctorPage, 'room-doctor-after-network-drop');
    });

    await step('the broker crashes mid-consult and comes back; both rooms rejoin by themselves', async () => {
      if (!restartDir) {
        log('  SKIPPED: no TELECONSULT_E2E_RESTART_DIR (run through tests/console_e2e.rs)');
        return;
      }
      const sides = [{ page: nursePage, other: doctor.user }, { page: doctorPage, other: nurse.user }];
      for (const side of sides) side.before = await mediaCounters(side.page, side.other);
      const crashedAt = Date.now();
      await restartBroker();
      log(`  the broker was killed and listens again after ${((Date.now() - crashedAt) / 1000).toFixed(1)} s`);
      await Promise.all(sides.map(async (side) => {
        const deadline = Date.now() + RECOVERY_TIMEOUT_MS;
        while (true) {
          const now = await mediaCounters(side.page, side.other);
          const state = await side.page.locator(tid('room-status')).getAttribute('data-state');
          // A new session on the new broker (a new generation), with its media.
          if (now && now.generation !== side.before.generation && state === 'connected' && now.video >= 10 && now.audio >= 25) {
            side.back = Date.now();
            side.now = now;
            return;
          }
          if (Date.now() > deadline) {
            throw new Failure(`${side.page.who}: ${RECOVERY_TIMEOUT_MS / 1000} s after the broker restarted the room is ${state} ` +
              `(generation ${now?.generation}, was ${side.before.generation}), with ${now?.video} frames and ${now?.audio} audio packets from ${side.other}`);
          }
          await side.page.waitForTimeout(250);
        }
      }));
      for (const side of sides) {
        log(`  ${side.page.who}: joined the restarted broker by itself (generation ${side.before.generation} → ${side.now.generation}); ` +
          `media from ${side.other} again ${((side.back - crashedAt) / 1000).toFixed(1)} s after the crash`);
      }
      await shot(nursePage, 'room-nurse-after-broker-restart');
    });

    await step(`doctor invites ${interpreter.user}, who joins (three participants) and leaves`, async () => {
      await doctorPage.locator(tid('room-invite-user')).fill(interpreter.user);
      await doctorPage.locator(tid('room-invite')).click();
      const result = doctorPage.locator(tid('room-invite-result'));
      await doctorPage.waitForFunction((sel) => ['ok', 'error'].includes(document.querySelector(sel)?.dataset.result), tid('room-invite-result'));
      check(await result.getAttribute('data-result') === 'ok', `the invitation failed: ${await result.textContent()}`);
      await shot(doctorPage, 'room-doctor-invited');
      const page = await newPage(browser, ignoreHTTPSErrors, 'interpreter');
      await signInOk(page, interpreter);
      await goto(page, `#/consultation/${consultationId}`);
      await page.locator(tid('join-session')).click();
      await page.locator(`${tid('room-status')}[data-state="connected"]`).waitFor({ timeout: 30_000 });
      const [fromNurse, fromDoctor] = [await mediaFrom(page, nurse.user), await mediaFrom(page, doctor.user)];
      log(`  interpreter ${summary(fromNurse, nurse.user)}`);
      log(`  interpreter ${summary(fromDoctor, doctor.user)}`);
      const atNurse = await waitForFrames(nursePage, interpreter.user, 0, 'the interpreter joined');
      log(`  nurse decodes ${atNurse.videoFramesDecoded} frames from the interpreter`);
      check(await nursePage.locator(`${tid('room-tile')}[data-user]`).count() === 3, 'the nurse does not see three tiles');
      await shot(page, 'room-interpreter');
      await page.locator(tid('room-leave')).click();
      await page.locator(`${tid('room-status')}[data-state="left"]`).waitFor();
      for (const other of [nursePage, doctorPage]) {
        await other.locator(`${tid('room-tile')}[data-user="${interpreter.user}"]`).waitFor({ state: 'detached', timeout: 15_000 });
      }
      // The others renegotiated without the interpreter's tracks and still see each other.
      await waitForFrames(nursePage, doctor.user, (await roomStats(nursePage)).byPublisher[doctor.user].videoFramesDecoded, 'after the interpreter left');
      await page.context().close();
      pages.delete(page);
    });

    await step('doctor ends the session for everyone', async () => {
      await doctorPage.locator(tid('room-end')).click();
      for (const page of [doctorPage, nursePage]) {
        await page.locator(`${tid('room-status')}[data-state="ended"]`).waitFor({ timeout: 20_000 });
        await page.locator(tid('room-back')).waitFor();
        const stopped = await page.evaluate(() => !window.__teleconsultRoom?.pc);
        check(stopped, `${page.who}: the peer connection is still open after the end`);
      }
      await shot(nursePage, 'room-nurse-ended');
      await shot(doctorPage, 'room-doctor-ended');
    });

    const diagnosis = 'Stable angina; no acute coronary syndrome on the ECG (e2e).';
    await step('doctor files and signs the opinion', async () => {
      await goto(doctorPage, `#/opinion/${consultationId}`);
      await doctorPage.locator(tid('opinion-form')).waitFor();
      await doctorPage.locator(tid('opinion-diagnosis')).fill(diagnosis);
      await doctorPage.locator(tid('opinion-recommendations')).fill('Aspirin 100 mg daily; avoid exertion above 4,000 m; stress test at the county hospital.');
      await doctorPage.locator(tid('opinion-follow-up')).fill('Follow up in two weeks by teleconsult.');
      // Switching the language midway draws the page again and keeps what was typed.
      const typed = async () => Promise.all(['opinion-diagnosis', 'opinion-recommendations', 'opinion-follow-up']
        .map((id) => doctorPage.locator(tid(id)).inputValue()));
      const before = await typed();
      for (const lang of ['en', 'zh-CN']) {
        // The form drawn before the switch is marked, to wait for the one drawn after.
        await doctorPage.locator(tid('opinion-form')).evaluate((form) => { form.dataset.drawnBefore = 'true'; });
        await doctorPage.locator(tid('lang-switch')).click();
        await doctorPage.waitForFunction((l) => document.documentElement.lang === l, lang);
        await doctorPage.locator(`${tid('opinion-form')}:not([data-drawn-before])`).waitFor();
        const after = await typed();
        check(JSON.stringify(after) === JSON.stringify(before),
          `switching to ${lang} lost the opinion being written: ${JSON.stringify(before)} became ${JSON.stringify(after)}`);
      }
      log('  the opinion being written survives switching to English and back');
      await shot(doctorPage, 'doctor-opinion-form');
      await accessibility(doctorPage, 'opinion form');
      await doctorPage.locator(tid('opinion-file')).click();
      await doctorPage.locator(tid('opinion-sign')).waitFor();
      await doctorPage.locator(tid('opinion-sign')).click();
      await doctorPage.locator(`${tid('opinion-result')} ${tid('opinion-view')}[data-signed="true"]`).waitFor();
      await shot(doctorPage, 'doctor-opinion-signed');
    });

    await step('nurse reads the signed opinion', async () => {
      await goto(nursePage, `#/consultation/${consultationId}`);
      const view = nursePage.locator(`${tid('opinion-view')}[data-signed="true"]`);
      await view.waitFor({ timeout: 20_000 });
      const text = await view.locator(tid('opinion-view-diagnosis')).textContent();
      check(text.includes(diagnosis), `the nurse sees another diagnosis: ${text}`);
      await nursePage.locator(`${tid('consultation-state')}[data-state="CONSULTATION_STATE_COMPLETED"]`).first().waitFor();
      const content = nursePage.locator(`${tid('opinion-check-content')}[data-ok="true"]`);
      if (await content.count()) log('  content hash recomputed in the browser: ok');
      await shot(nursePage, 'nurse-opinion');
      await accessibility(nursePage, 'consultation detail (signed opinion)');
    });

    await step('nurse files an urgent request and watches the on-call doctor pick it up', async () => {
      // The doctor's inbox is open and live before the request goes out.
      await goto(doctorPage, '#/inbox');
      await doctorPage.locator(`${tid('live-status')}[data-status="live"]`).waitFor({ timeout: 30_000 });
      await goto(nursePage, '#/urgent');
      await nursePage.locator(tid('urgent-form')).waitFor();
      await nursePage.locator(tid('urgent-specialty')).fill('cardiology');
      await nursePage.locator(tid('urgent-patient-ref')).fill('BIRU-2026-0107');
      await nursePage.locator(tid('urgent-reason')).fill('Chest pain at rest, SpO2 84% on air (e2e).');
      await shot(nursePage, 'nurse-urgent-form');
      await accessibility(nursePage, 'urgent request');
      await nursePage.locator(tid('urgent-submit')).click();
      await nursePage.waitForURL(/#\/urgent\/[^/]+$/);
      const urgentId = decodeURIComponent(nursePage.url().split('#/urgent/')[1]);
      await nursePage.locator(`${tid('urgent-status')}[data-state="CONSULTATION_STATE_REQUESTED"]`).waitFor();
      await shot(nursePage, 'nurse-urgent-waiting');
      // It reaches the on-call cardiologist's inbox live, marked urgent.
      await doctorPage.locator(`${tid(`inbox-item-${urgentId}`)}[data-urgency="URGENCY_URGENT"]`).waitFor({ timeout: 30_000 });
      await shot(doctorPage, 'doctor-inbox-urgent');
      await doctorPage.locator(tid(`accept-${urgentId}`)).click();
      // The nurse's page sees it picked up without reloading.
      const pickedUp = nursePage.locator(tid('urgent-picked-up'));
      await pickedUp.waitFor({ timeout: 30_000 });
      const by = await nursePage.locator(tid('urgent-doctor')).textContent();
      check(by.includes('陈明') || by.includes('Chen'), `the urgent request was picked up by ${by}, not Chen`);
      check(await nursePage.locator(tid('notice-banner')).isHidden(), 'the "sent, waiting" notice stays after the request was picked up');
      log(`  ${urgentId}: ${(await pickedUp.textContent()).trim()}`);
      await shot(nursePage, 'nurse-urgent-picked-up');
    });

    await step('doctor declines a booking with a reason, and the nurse reads it', async () => {
      const SCHEDULING = 'teleconsult.v1.SchedulingService';
      // Booked straight through the page's client (the booking pages were shown above).
      const { slots } = await call(nursePage, SCHEDULING, 'SearchSlots', { specialty: 'cardiology', doctor_id: doctor.user });
      check(slots.length > 0, 'no free slot of the cardiologist left to book');
      const slot = slots.at(-1);
      const booked = await call(nursePage, SCHEDULING, 'BookConsultation', {
        slot, patient_ref: 'BIRU-2026-0108', specialty: 'cardiology', reason: 'Palpitations (e2e, to be declined).',
      });
      await goto(doctorPage, '#/inbox');
      await doctorPage.locator(tid(`inbox-item-${booked.id}`)).waitFor({ timeout: 30_000 });
      // Without a reason it is not sent.
      await doctorPage.locator(tid(`decline-${booked.id}`)).click();
      await doctorPage.locator(tid('error-banner')).waitFor({ state: 'visible' });
      const reason = 'Outside my practice: please book the provincial hospital\'s arrhythmia clinic.';
      await doctorPage.locator(tid(`decline-reason-${booked.id}`)).fill(reason);
      await doctorPage.locator(tid(`decline-${booked.id}`)).click();
      await doctorPage.locator(tid(`inbox-item-${booked.id}`)).waitFor({ state: 'detached', timeout: 10_000 });
      await goto(nursePage, `#/consultation/${booked.id}`);
      await nursePage.locator(`${tid('consultation-state')}[data-state="CONSULTATION_STATE_DECLINED"]`).first().waitFor();
      const shown = (await nursePage.locator(tid('consultation-state-reason')).textContent()).trim();
      check(shown === reason, `the nurse sees the reason ${JSON.stringify(shown)}`);
      log(`  ${booked.id} declined: ${shown}`);
      await shot(nursePage, 'nurse-consultation-declined');
    });

    let adminPage = null;
    await step('admin sees the timeline and a verified chain', async () => {
      adminPage = await newPage(browser, ignoreHTTPSErrors, 'admin');
      await signInOk(adminPage, admin);
      await goto(adminPage, `#/timeline/${consultationId}`);
      await adminPage.locator(tid('timeline-list')).waitFor();
      const actions = await adminPage.locator(tid('timeline-entry')).evaluateAll((rows) => rows.map((r) => r.dataset.action));
      log(`  ${actions.length} timeline records: ${[...new Set(actions)].join(', ')}`);
      for (const action of ['scheduling.book_consultation', 'session.join', 'session.end']) {
        check(actions.some((a) => a === action || a.startsWith(action)), `the timeline has no ${action}`);
      }
      const quality = await adminPage.locator(tid('timeline-quality-row')).count();
      log(`  session quality rows: ${quality}`);
      await shot(adminPage, 'admin-timeline');
      await accessibility(adminPage, 'timeline');
      await goto(adminPage, '#/verify');
      await adminPage.locator(tid('verify-form')).waitFor();
      await adminPage.locator(tid('verify-submit')).click();
      const verdict = adminPage.locator(tid('verify-result'));
      await verdict.waitFor();
      const intact = await verdict.getAttribute('data-intact');
      const checked = await adminPage.locator(tid('verify-records-checked')).textContent().catch(() => '?');
      check(intact === 'true', `the chain does not verify: ${(await verdict.textContent()).trim()}`);
      log(`  chain verified: ${checked.trim()} records checked`);
      await shot(adminPage, 'admin-verify');
      await accessibility(adminPage, 'verify');
      await goto(adminPage, '#/audit');
      await adminPage.locator(tid('audit-form')).waitFor();
      await adminPage.locator(tid('audit-query-submit')).click();
      await adminPage.locator(`${tid('audit-table')}, ${tid('audit-empty')}`).first().waitFor();
      await shot(adminPage, 'admin-audit');
      await accessibility(adminPage, 'audit');
    });

    await step('admin exports the audit log as JSON Lines and as FHIR from the console', async () => {
      const exported = async (format, file) => {
        await adminPage.locator(tid('audit-export-format')).selectOption(format);
        await adminPage.locator(tid('audit-export-submit')).click();
        const result = adminPage.locator(`${tid('audit-export-result')}[data-format="${format}"]`);
        await result.waitFor({ timeout: 30_000 });
        const [download] = await Promise.all([
          adminPage.waitForEvent('download'),
          adminPage.locator(tid('audit-export-download')).click(),
        ]);
        const saved = path.join(artifacts, file);
        await download.saveAs(saved);
        const text = readFileSync(saved, 'utf8');
        check(text.endsWith('\n'), `${file}: the export does not end with a newline`);
        const lines = text.slice(0, -1).split('\n');
        const records = lines.map((line, i) => {
          let value;
          try {
            value = JSON.parse(line);
          } catch (e) {
            throw new Failure(`${file}: line ${i + 1} is not JSON (${e.message}): ${line.slice(0, 200)}`);
          }
          check(value !== null && typeof value === 'object' && !Array.isArray(value), `${file}: line ${i + 1} is not a JSON object`);
          return value;
        });
        const shown = Number(await result.getAttribute('data-records'));
        check(shown === records.length, `${file}: the page says ${shown} records, the file has ${records.length} lines`);
        const head = {
          seq: await adminPage.locator(`${tid('audit-export-head-seq')} [data-seq]`).getAttribute('data-seq'),
          hash: await adminPage.locator(`${tid('audit-export-head-hash')} [data-hash]`).getAttribute('data-hash'),
        };
        log(`  ${format}: ${records.length} lines (${text.length} bytes) saved as ${download.suggestedFilename()}; head shown: seq ${head.seq}, ${head.hash}`);
        return { records, head };
      };

      await goto(adminPage, '#/audit');
      await adminPage.locator(tid('audit-export-form')).waitFor();
      const jsonl = await exported('FORMAT_JSONL', 'audit-export.jsonl');
      const { records, head } = jsonl;
      check(records.length > 0, 'the JSON Lines export is empty');
      const last = records.at(-1);
      check(String(last.seq) === head.seq, `the last line's seq is ${last.seq}, the head shown is ${head.seq}`);
      check(last.hash === head.hash, `the last line's hash ${last.hash} is not the head shown (${head.hash})`);
      for (let i = 1; i < records.length; i += 1) {
        check(records[i].seq === records[i - 1].seq + 1, `the export skips from seq ${records[i - 1].seq} to ${records[i].seq}`);
        check(records[i].prev_hash === records[i - 1].hash, `seq ${records[i].seq}: prev_hash does not chain to seq ${records[i - 1].seq}`);
      }
      log(`  JSON Lines: seq ${records[0].seq}…${last.seq}, every line a JSON object chained to the one before; last seq and hash = the head shown`);
      await shot(adminPage, 'admin-audit-export');
      await accessibility(adminPage, 'audit export');

      const fhir = await exported('FORMAT_FHIR_NDJSON', 'audit-export-fhir.ndjson');
      const notAuditEvents = fhir.records.filter((r) => r.resourceType !== 'AuditEvent').length;
      check(notAuditEvents === 0, `${notAuditEvents} FHIR lines are not AuditEvent resources`);
      check(fhir.records.length >= records.length, `the FHIR export has fewer records (${fhir.records.length}) than the JSON Lines one (${records.length})`);
    });

    const newPassword = `E2e-${Date.now().toString(36)}-set-by-admin`;
    await step(`admin sets a console password for ${passwordee.user} on the accounts page; it signs in`, async () => {
      await adminPage.locator(tid('nav-accounts')).click();
      await adminPage.waitForURL(/#\/admin\/accounts$/);
      await adminPage.locator(tid('accounts-table')).waitFor();
      await adminPage.locator(tid('accounts-institution')).selectOption(passwordee.institution);
      await adminPage.locator(tid('accounts-load')).click();
      await adminPage.locator(`${tid('accounts-table')} tbody tr`).first().waitFor();
      // The unfiltered list is still shown until the filtered one arrives (the page
      // marks no loading): wait for it, then say what is listed if it never comes.
      await adminPage.waitForFunction(([rows, institution]) => {
        const shown = [...document.querySelectorAll(rows)];
        return shown.length > 0 && shown.every((row) => row.dataset.institutionId === institution);
      }, [`${tid('accounts-table')} tbody tr`, passwordee.institution], { timeout: 10_000 }).catch(() => {});
      const institutions = await adminPage.locator(`${tid('accounts-table')} tbody tr`).evaluateAll((rows) => [...new Set(rows.map((r) => r.dataset.institutionId))]);
      check(institutions.length === 1 && institutions[0] === passwordee.institution, `listing ${passwordee.institution} shows users of ${institutions.join(', ')}`);
      await adminPage.locator(tid(`account-row-${passwordee.user}`)).waitFor();
      log(`  ${await adminPage.locator(tid('accounts-count')).getAttribute('data-count')} users of ${passwordee.institution} listed`);
      await shot(adminPage, 'admin-accounts');
      await accessibility(adminPage, 'accounts');

      await adminPage.locator(tid(`account-set-password-${passwordee.user}`)).click();
      await adminPage.locator(`${tid('account-panel')}[data-kind="password"][data-user-id="${passwordee.user}"]`).waitFor();
      const focused = () => adminPage.evaluate(() => document.activeElement?.dataset.testid || document.activeElement?.tagName);
      check(await focused() === 'account-password', `opening the form focuses ${await focused()}, not the password field`);
      const error = adminPage.locator(tid('account-password-error'));
      // The form's own check: the two entries differ.
      await adminPage.locator(tid('account-password')).fill('abcdefghijk');
      await adminPage.locator(tid('account-password-again')).fill('abcdefghijX');
      await adminPage.locator(tid('account-password-submit')).click();
      await error.waitFor({ state: 'visible' });
      log(`  mismatch refused in the page: ${(await error.textContent()).trim()}`);
      // The broker's check: at most 256 characters (the page leaves that to the broker).
      const tooLong = 'x'.repeat(300);
      await adminPage.locator(tid('account-password')).fill(tooLong);
      await adminPage.locator(tid('account-password-again')).fill(tooLong);
      await adminPage.locator(tid('account-password-submit')).click();
      await adminPage.locator(`${tid('account-password-error')}[data-code="INVALID_ARGUMENT"]`).waitFor();
      log(`  broker refused a 300-character password: INVALID_ARGUMENT: ${(await error.textContent()).trim()}`);
      // The keyboard way: type twice, Enter.
      await adminPage.locator(tid('account-password')).fill(newPassword);
      await adminPage.locator(tid('account-password-again')).fill(newPassword);
      await adminPage.locator(tid('account-password-again')).press('Enter');
      await adminPage.locator(tid('account-password-done')).waitFor({ state: 'visible' });
      check(await error.isHidden(), 'the error is still shown after the password was set');
      log(`  ${(await adminPage.locator(tid('account-password-done')).textContent()).trim()}`);
      await shot(adminPage, 'admin-accounts-password-set');
      await accessibility(adminPage, 'accounts (password form)');
      await adminPage.keyboard.press('Escape');
      await adminPage.locator(tid('account-panel')).waitFor({ state: 'detached' });
      check(await focused() === `account-set-password-${passwordee.user}`, `Escape leaves the focus on ${await focused()}, not the row's button`);

      const page = await newPage(browser, ignoreHTTPSErrors, passwordee.user);
      await signIn(page, passwordee.user, passwordee.password);
      const old = await signInError(page);
      check(old.code === 'UNAUTHENTICATED', `the replaced password answers ${old.code} (${old.text})`);
      await signInOk(page, { user: passwordee.user, password: newPassword });
      log(`  ${passwordee.user} signs in with the new password in a fresh browser (the old one is refused)`);
      await shot(page, 'password-set-signed-in');
      await page.context().close();
      pages.delete(page);
    });

    await step(`admin makes an enrollment link for ${enrollee.user}; opened in a fresh browser it sets a password and signs in`, async () => {
      const origin = new URL(consoleUrl).origin;
      await adminPage.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      await adminPage.locator(tid('accounts-institution')).selectOption('');
      await adminPage.locator(tid('accounts-load')).click();
      await adminPage.locator(tid('accounts-search')).fill(enrollee.user);
      await adminPage.locator(`${tid('accounts-count')}[data-count="1"]`).waitFor();
      await adminPage.locator(tid(`account-enroll-${enrollee.user}`)).click();
      await adminPage.locator(`${tid('account-panel')}[data-kind="enroll"][data-user-id="${enrollee.user}"]`).waitFor();
      await adminPage.locator(tid('account-enroll-hours')).fill('24');
      const asked = Date.now();
      await adminPage.locator(tid('account-enroll-submit')).click();
      await adminPage.locator(tid('account-enroll-result')).waitFor();
      const link = await adminPage.locator(tid('account-enroll-link')).inputValue();
      check(link.startsWith(`${origin}/#/enroll/`), `the enrollment link is ${link}`);
      const expires = Number(await adminPage.locator(tid('account-enroll-expires')).getAttribute('data-expires')) * 1000;
      const expected = asked + 24 * 3600_000;
      check(Math.abs(expires - expected) < 5 * 60_000, `the link expires at ${new Date(expires).toISOString()}, not 24 hours from now`);
      const expiresText = (await adminPage.locator(tid('account-enroll-expires')).textContent()).trim();
      check(expiresText.includes(shanghaiParts(expires).time), `the expiry "${expiresText}" is not in Asia/Shanghai time (${shanghaiParts(expires).time})`);
      log(`  link ${link.replace(/[0-9a-f]{16,}$/, (token) => `${token.slice(0, 8)}…`)}; ${expiresText}`);
      await adminPage.locator(tid('account-enroll-copy')).click();
      await adminPage.locator(`${tid('account-enroll-copied')}[data-copied]`).waitFor();
      const copied = await adminPage.locator(tid('account-enroll-copied')).getAttribute('data-copied');
      const clipboard = await adminPage.evaluate(() => navigator.clipboard.readText()).catch((e) => `(unreadable: ${e.message})`);
      check(copied === 'true' && clipboard === link, `copy says ${copied}; the clipboard holds ${clipboard}`);
      await shot(adminPage, 'admin-accounts-enrollment-link');
      await accessibility(adminPage, 'accounts (enrollment link)');

      const page = await newPage(browser, ignoreHTTPSErrors, enrollee.user);
      await page.goto(link);
      await page.locator(tid('enroll-form')).waitFor();
      await shot(page, 'enroll');
      await accessibility(page, 'enroll');
      const chosen = `E2e-${Date.now().toString(36)}-chosen-by-user`;
      await page.locator(tid('enroll-password')).fill(chosen);
      await page.locator(tid('enroll-password-again')).fill(chosen);
      await page.locator(tid('enroll-password-again')).press('Enter');
      await page.locator(`${tid('current-user')}[data-user-id="${enrollee.user}"]`).waitFor();
      log(`  ${enrollee.user} chose a password and landed signed in at ${new URL(page.url()).hash}`);
      await shot(page, 'enrolled-signed-in');
      await page.context().close();
      pages.delete(page);

      const again = await newPage(browser, ignoreHTTPSErrors, `${enrollee.user}-again`);
      await again.goto(link);
      await again.locator(tid('enroll-password')).fill(chosen);
      await again.locator(tid('enroll-password-again')).fill(chosen);
      await again.locator(tid('enroll-submit')).click();
      const reused = again.locator(tid('enroll-error'));
      await reused.waitFor({ state: 'visible' });
      const code = await reused.getAttribute('data-code');
      check(code === 'FAILED_PRECONDITION', `a used link answers ${code}: ${(await reused.textContent()).trim()}`);
      log(`  the link used a second time: ${code}: ${(await reused.textContent()).trim()}`);
      await again.context().close();
      pages.delete(again);
    });

    await step('the nurse signs out; her session no longer works', async () => {
      await nursePage.locator(tid('signout')).click();
      await nursePage.waitForURL(/#\/signin$/);
      await nursePage.locator(tid('signin-form')).waitFor();
      const after = await nursePage.evaluate(async () => {
        const { unary } = await import('/js/grpcweb.js');
        try {
          await unary('teleconsult.v1.DirectoryService', 'WhoAmI', {});
          return { ok: true };
        } catch (e) {
          return { code: e.codeName };
        }
      });
      check(after.code === 'UNAUTHENTICATED', `after signing out, WhoAmI answered ${JSON.stringify(after)}`);
      log(`  WhoAmI after signing out: ${after.code}`);
    });

    writeFileSync(path.join(artifacts, 'media-stats.json'), JSON.stringify(results, null, 2));
    const pagesChecked = accessibilityReport.length;
    const findings = accessibilityReport.reduce((n, r) => n + r.violations.length, 0);
    log(`accessibility: ${pagesChecked} page views checked with axe-core; ${findings} minor or moderate finding(s), none serious or critical`);
    if (networkDrop?.skipped) log(`SKIPPED network drop: ${networkDrop.skipped}`);
    log(`PASS: every step passed${networkDrop?.skipped ? ' (the network drop was skipped)' : ''}; ${shots} screenshots in ${artifacts}`);
  } catch (error) {
    log(`✘ FAILED at step "${currentStep}": ${error instanceof Failure ? error.message : error.stack || error}`);
    const safe = currentStep.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    for (const page of pages) {
      try {
        if (!page.isClosed()) await shot(page, `FAILED-${page.who}-${safe}`);
      } catch { /* the page may be gone */ }
    }
    throw error;
  } finally {
    writeFileSync(path.join(artifacts, 'accessibility.json'), JSON.stringify(accessibilityReport, null, 2));
    await browser.close().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`e2e FAILED at step "${currentStep}": ${error instanceof Failure ? error.message : error.message || error}`);
    process.exit(1);
  },
);
