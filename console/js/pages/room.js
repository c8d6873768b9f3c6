// The consult room: camera and microphone through the broker's SFU.
//
// Signaling (proto/teleconsult/v1/session.proto): `Open` is the broker's half of the
// session, `Signal` carries ours. The broker makes every offer; we only answer. Its
// first offer has one receive-only audio and one receive-only video section for our
// microphone and camera, then a send-only section per track of every other
// participant, whose stream id (msid) is the publisher's user id.
//
// Reconnecting: an ICE drop asks the broker for a fresh offer (`restart_ice`); a broken
// `Open` stream is opened again with backoff and the peer connection rebuilt, without
// the user doing anything. The camera and microphone are kept across both.

import { unary, serverStream, GrpcError } from '../grpcweb.js';

const SESSION = 'teleconsult.v1.SessionService';
const SCHEDULING = 'teleconsult.v1.SchedulingService';

// Codes after which opening again cannot help (the call was refused, not cut).
const PERMANENT = new Set([
  'INVALID_ARGUMENT', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'FAILED_PRECONDITION', 'UNAUTHENTICATED', 'UNIMPLEMENTED', 'OUT_OF_RANGE',
]);
const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION',
  'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

const STATS_INTERVAL_MS = 2000;
// An ICE `disconnected` that lasts this long asks for an ICE restart.
const DISCONNECTED_GRACE_MS = 3000;
// An ICE restart that has not reconnected by then: open the session again.
const RESTART_TIMEOUT_MS = 20000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

// The room's words are in the console's dictionaries (console/js/i18n.js, the `room.`
// block); `t` is the console's, set at mount.
let t = (key) => key;

function tr(key, params) {
  return t(key, params);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'className') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// Styles set from script (the CSP forbids style attributes in markup, not the CSSOM).
function css(node, styles) {
  Object.assign(node.style, styles);
  return node;
}

function codeName(error) {
  if (!error) return '';
  const code = error.codeName ?? error.code_name ?? error.code;
  if (typeof code === 'number') return CODE_NAMES[code] ?? String(code);
  return typeof code === 'string' ? code : '';
}

function isGrpcError(error) {
  return (typeof GrpcError === 'function' && error instanceof GrpcError) || codeName(error) !== '';
}

function errorText(error) {
  const code = codeName(error);
  const message = error?.message ?? String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The media sections of an SDP, in order: mid, kind and direction. */
function sections(sdp) {
  const result = [];
  let current = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      current = { kind: line.slice(2).split(' ')[0], mid: null, direction: 'sendrecv', msid: null };
      result.push(current);
    } else if (current) {
      if (line.startsWith('a=mid:')) current.mid = line.slice(6).trim();
      else if (/^a=(sendrecv|sendonly|recvonly|inactive)$/.test(line)) current.direction = line.slice(2);
      else if (line.startsWith('a=msid:')) current.msid = line.slice(7).split(' ')[0];
    }
  }
  return result;
}

const ROLE_KEYS = {
  clinic_side: 'room.roleClinicSide',
  doctor: 'room.roleDoctor',
  additional_doctor: 'room.roleAdditionalDoctor',
  interpreter: 'room.roleInterpreter',
};

const QUALITY_KEYS = {
  good: 'room.qualityGood',
  fair: 'room.qualityFair',
  poor: 'room.qualityPoor',
  disconnected: 'room.qualityDisconnected',
};

function roleName(role) {
  const key = ROLE_KEYS[String(role || '').toLowerCase()];
  return key ? tr(key) : String(role || '');
}

function sessionRoleOf(principal) {
  switch (principal?.role) {
    case 'ROLE_CLINIC_STAFF': return 'clinic_side';
    case 'ROLE_DOCTOR': return 'doctor';
    case 'ROLE_INTERPRETER': return 'interpreter';
    default: return '';
  }
}

function formatMs(seconds) {
  return seconds == null ? '–' : `${Math.round(seconds * 1000)} ms`;
}

class ConsultRoom {
  constructor(container, ctx, consultationId) {
    this.container = container;
    this.ctx = ctx;
    this.consultationId = consultationId;
    this.unary = ctx.unary ?? unary;
    this.serverStream = ctx.serverStream ?? serverStream;
    this.me = ctx.principal?.user_id ?? ctx.user?.id ?? '';
    this.myRole = sessionRoleOf(ctx.principal);
    this.isAssignedDoctor = false;

    this.localStream = null;
    this.audioTrack = null;
    this.videoTrack = null;
    this.micMuted = false;
    this.cameraOff = false;
    this.audioOnly = false;

    this.generation = 0; // bumped by every (re)open; stale callbacks compare it
    this.pc = null;
    this.channel = null;
    this.abort = null;
    this.publishMids = null; // { audio, video } our sending sections
    this.publisherByMid = new Map();
    this.publisherByTrack = new Map();
    this.remoteCandidates = [];
    this.signalChain = Promise.resolve();
    this.offerChain = Promise.resolve();
    this.participants = new Map(); // user id -> { info, tile, audio_muted, video_muted }
    this.attempt = 0;
    this.finished = false; // ended, left or refused: no more reconnects
    this.destroyed = false;
    this.disconnectedTimer = null;
    this.restartTimer = null;
    this.previous = null; // the last stats sample, for rates
    this.onOnline = () => { if (this.waitingToReopen) this.reopen(0); };
  }

  // ---- page -------------------------------------------------------------

  render() {
    this.container.replaceChildren();
    this.root = el('section', { className: 'room', 'data-testid': 'room', 'aria-label': tr('room.title') });
    this.heading = el('h1', { text: tr('room.title') });
    this.status = el('p', { className: 'room-status', 'data-testid': 'room-status', role: 'status', 'aria-live': 'polite', 'data-state': 'starting', text: tr('room.statusStarting') });
    this.quality = el('p', { className: 'room-quality', 'data-testid': 'room-quality', 'data-quality': 'disconnected' });
    this.qualityLabel = el('strong', { text: tr('room.qualityDisconnected') });
    this.qualityDetail = el('span', { className: 'room-quality-detail' });
    this.quality.append(this.qualityLabel, ' ', this.qualityDetail);
    this.qualityDot = css(el('span', { 'aria-hidden': 'true' }), {
      display: 'inline-block', width: '0.75em', height: '0.75em', borderRadius: '50%', marginRight: '0.4em', background: '#999',
    });
    this.quality.prepend(this.qualityDot);

    this.tiles = css(el('div', { className: 'room-tiles', 'data-testid': 'room-tiles' }), {
      display: 'grid', gap: '0.75rem', gridTemplateColumns: 'repeat(auto-fit, minmax(min(100%, 320px), 1fr))', margin: '0.75rem 0',
    });
    this.waiting = el('p', { className: 'room-waiting', 'data-testid': 'room-waiting', text: tr('room.waiting') });

    this.muteButton = el('button', { type: 'button', 'data-testid': 'room-mute', 'aria-pressed': 'false', onclick: () => this.toggleMic() });
    this.cameraButton = el('button', { type: 'button', 'data-testid': 'room-camera', 'aria-pressed': 'false', onclick: () => this.toggleCamera() });
    this.audioOnlyButton = el('button', { type: 'button', 'data-testid': 'room-audio-only', 'aria-pressed': 'false', onclick: () => this.toggleAudioOnly() });
    this.leaveButton = el('button', { type: 'button', 'data-testid': 'room-leave', className: 'danger', text: tr('room.leave'), onclick: () => this.leave() });
    this.endButton = el('button', { type: 'button', 'data-testid': 'room-end', className: 'danger', text: tr('room.end'), hidden: true, onclick: () => this.endSession() });
    this.controls = css(el('div', { className: 'room-controls', role: 'toolbar', 'aria-label': tr('room.title') },
      this.muteButton, this.cameraButton, this.audioOnlyButton, this.leaveButton, this.endButton), {
      display: 'flex', flexWrap: 'wrap', gap: '0.5rem', alignItems: 'center',
    });

    this.inviteInput = el('input', { type: 'text', id: 'room-invite-user', 'data-testid': 'room-invite-user', placeholder: 'nagqu-interp-gyaltsen', autocomplete: 'off' });
    this.inviteLabel = el('label', { for: 'room-invite-user', text: tr('room.inviteUser') });
    this.inviteButton = el('button', { type: 'submit', 'data-testid': 'room-invite', text: tr('room.invite') });
    this.inviteResult = el('span', { 'data-testid': 'room-invite-result', role: 'status' });
    this.inviteForm = css(el('form', { className: 'room-invite', hidden: true, onsubmit: (e) => { e.preventDefault(); this.invite(); } },
      this.inviteLabel, ' ', this.inviteInput, ' ', this.inviteButton, ' ', this.inviteResult), {
      marginTop: '0.75rem',
    });

    this.mediaNotice = el('p', { className: 'room-media-error', 'data-testid': 'room-media-error', role: 'alert', hidden: true });
    this.endedPanel = el('div', { className: 'room-ended', 'data-testid': 'room-ended', hidden: true });
    this.soundButton = el('button', { type: 'button', 'data-testid': 'room-sound', hidden: true, text: tr('room.soundBlocked'), onclick: () => this.resumeSound() });

    this.root.append(this.heading, this.status, this.mediaNotice, this.quality, this.controls, this.soundButton, this.waiting, this.tiles, this.inviteForm, this.endedPanel);
    this.container.append(this.root);
    this.updateControls();
  }

  setStatus(state, key, params) {
    if (!this.status) return;
    this.lastStatus = { key, params };
    this.status.dataset.state = state;
    this.status.textContent = tr(key, params);
  }

  /** The console switched language: the room keeps running and translates itself. */
  retranslate() {
    if (!this.root || this.destroyed) return;
    this.root.setAttribute('aria-label', tr('room.title'));
    this.controls.setAttribute('aria-label', tr('room.title'));
    this.heading.textContent = tr('room.title');
    if (this.mediaError) this.showMediaProblem(this.mediaError);
    if (this.lastStatus) this.status.textContent = tr(this.lastStatus.key, this.lastStatus.params);
    this.qualityLabel.textContent = tr(QUALITY_KEYS[this.quality.dataset.quality]);
    if (this.lastQualityParams) this.qualityDetail.textContent = tr('room.qualityDetail', this.lastQualityParams);
    this.waiting.textContent = tr('room.waiting');
    this.leaveButton.textContent = tr('room.leave');
    this.endButton.textContent = tr('room.end');
    this.soundButton.textContent = tr('room.soundBlocked');
    this.inviteLabel.textContent = tr('room.inviteUser');
    this.inviteButton.textContent = tr('room.invite');
    if (this.endedPanel.firstChild && this.lastEnded) this.showEnded(this.lastEnded.state, this.lastEnded.reason);
    this.updateControls();
  }

  updateControls() {
    const noAudio = !this.audioTrack;
    const noVideo = !this.videoTrack;
    this.muteButton.textContent = this.micMuted ? tr('room.unmute') : tr('room.mute');
    this.muteButton.setAttribute('aria-pressed', String(this.micMuted));
    this.muteButton.disabled = noAudio || this.finished;
    this.cameraButton.textContent = this.cameraOff ? tr('room.cameraOn') : tr('room.cameraOff');
    this.cameraButton.setAttribute('aria-pressed', String(this.cameraOff));
    this.cameraButton.disabled = noVideo || this.audioOnly || this.finished;
    this.audioOnlyButton.textContent = this.audioOnly ? tr('room.audioOnlyOff') : tr('room.audioOnly');
    this.audioOnlyButton.setAttribute('aria-pressed', String(this.audioOnly));
    this.audioOnlyButton.disabled = this.finished;
    this.leaveButton.disabled = this.finished;
    this.endButton.hidden = !this.isAssignedDoctor;
    this.endButton.disabled = this.finished;
    this.inviteForm.hidden = !this.isAssignedDoctor || this.finished;
    for (const entry of this.participants.values()) this.updateTile(entry);
    this.waiting.hidden = this.finished || [...this.participants.keys()].some((user) => user !== this.me);
  }

  // ---- tiles --------------------------------------------------------------

  participant(info) {
    const user = info.user_id;
    let entry = this.participants.get(user);
    if (!entry) {
      const video = el('video', { autoplay: true, playsinline: true, 'data-testid': 'room-video', 'aria-label': info.display_name || user });
      video.muted = true; // sound plays through the audio element
      css(video, { position: 'absolute', inset: '0', width: '100%', height: '100%', objectFit: 'cover' });
      // Shown instead of the picture: camera off, audio only, or no video yet.
      const placeholder = css(el('span', { className: 'room-tile-placeholder', 'data-testid': 'room-tile-placeholder', 'aria-hidden': 'true' }), {
        position: 'absolute', inset: '0', display: 'flex', alignItems: 'center', justifyContent: 'center',
        fontSize: '3rem', color: '#eee',
      });
      const screen = css(el('div', { className: 'room-tile-screen' }, video, placeholder), {
        position: 'relative', width: '100%', aspectRatio: '4 / 3', background: '#222', borderRadius: '6px', overflow: 'hidden',
      });
      const audio = el('audio', { autoplay: true });
      const name = el('span', { className: 'room-tile-name', 'data-testid': 'room-tile-name' });
      const role = el('span', { className: 'room-tile-role', 'data-testid': 'room-tile-role' });
      const badges = css(el('span', { className: 'room-tile-badges', 'data-testid': 'room-tile-badges' }), { display: 'inline-flex', gap: '0.3rem', marginLeft: '0.4rem' });
      const caption = css(el('figcaption', {}, name, ' · ', role, badges), { marginTop: '0.3rem' });
      const tile = el('figure', { className: 'room-tile', 'data-testid': 'room-tile', 'data-user': user }, screen, audio, caption);
      css(tile, { margin: '0', padding: '0.5rem', border: '1px solid #ccc', borderRadius: '8px' });
      entry = { info, tile, video, placeholder, audio, name, role, badges, audio_muted: false, video_muted: false, stream: null };
      this.participants.set(user, entry);
      if (user === this.me) this.tiles.prepend(tile); else this.tiles.append(tile);
    }
    entry.info = { ...entry.info, ...info };
    this.updateTile(entry);
    this.updateWaiting();
    return entry;
  }

  updateWaiting() {
    if (this.waiting) this.waiting.hidden = this.finished || [...this.participants.keys()].some((user) => user !== this.me);
  }

  updateTile(entry) {
    const self = entry.info.user_id === this.me;
    entry.name.textContent = (entry.info.display_name || entry.info.user_id) + (self ? tr('room.you') : '');
    entry.role.textContent = roleName(entry.info.role);
    const audioMuted = self ? this.micMuted : entry.audio_muted;
    const videoMuted = self ? (this.cameraOff || this.audioOnly) : entry.video_muted;
    entry.tile.dataset.audioMuted = String(audioMuted);
    entry.tile.dataset.videoMuted = String(videoMuted);
    const badges = [];
    if (audioMuted) badges.push(['mic_off', tr('room.badgeMicOff')]);
    if (videoMuted) badges.push(['camera_off', tr('room.badgeCameraOff')]);
    if (this.audioOnly && !self) badges.push(['audio_only', tr('room.badgeAudioOnly')]);
    entry.badges.replaceChildren(...badges.map(([kind, text]) =>
      css(el('span', { className: `badge badge-${kind}`, 'data-testid': `room-badge-${kind.replace('_', '-')}`, text }), {
        fontSize: '0.8em', padding: '0 0.4em', borderRadius: '4px', background: '#f4d6d6', color: '#6b1111',
      })));
    // Audio only: remote pictures are neither shown nor (once renegotiated) received.
    const showVideo = self ? !!this.videoTrack && !videoMuted : !this.audioOnly && !videoMuted && !!entry.stream;
    const wanted = showVideo ? (self ? this.localStream : entry.stream) : null;
    if (entry.video.srcObject !== wanted) {
      entry.video.srcObject = wanted;
      if (wanted) entry.video.play().catch(() => {});
    }
    entry.video.style.visibility = showVideo ? 'visible' : 'hidden';
    entry.placeholder.hidden = showVideo;
    entry.placeholder.style.display = showVideo ? 'none' : 'flex';
    entry.placeholder.textContent = Array.from(entry.info.display_name || entry.info.user_id || '?')[0].toUpperCase();
    if (!self && entry.audio.srcObject !== entry.stream) {
      entry.audio.srcObject = entry.stream;
      if (entry.stream) this.playSound(entry.audio);
    }
  }

  playSound(audio) {
    audio.play().catch(() => {
      // Autoplay refused until the user interacts with the page.
      if (this.soundButton) this.soundButton.hidden = false;
    });
  }

  resumeSound() {
    this.soundButton.hidden = true;
    for (const entry of this.participants.values()) if (entry.audio.srcObject) this.playSound(entry.audio);
  }

  removeParticipant(user) {
    const entry = this.participants.get(user);
    if (!entry || user === this.me) return;
    entry.video.srcObject = null;
    entry.audio.srcObject = null;
    entry.tile.remove();
    this.participants.delete(user);
    this.updateWaiting();
  }

  // ---- lifecycle ----------------------------------------------------------

  async start() {
    if (typeof this.ctx.t === 'function') t = this.ctx.t;
    this.stopLanguage = this.ctx.onLanguageChange?.(() => this.retranslate());
    this.render();
    window.addEventListener('online', this.onOnline);
    this.exposeForTests();
    this.loadConsultation();
    this.claimWindow();
    this.localStream = await this.openDevices();
    if (this.destroyed) { this.stopLocal(); return; }
    this.audioTrack = this.localStream?.getAudioTracks()[0] ?? null;
    this.videoTrack = this.localStream?.getVideoTracks()[0] ?? null;
    this.participant({ user_id: this.me, role: this.myRole, display_name: this.myName() });
    this.updateControls();
    this.statsTimer = setInterval(() => this.sampleQuality(), STATS_INTERVAL_MS);
    this.open();
  }

  /** Camera and microphone; failing that either one (a clinic PC without a camera
   *  still talks); failing both, the room only receives. Says what is missing. */
  async openDevices() {
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25, max: 30 } };
    let firstError = null;
    for (const constraints of [{ audio, video }, { audio }, { video }]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (!constraints.video || !constraints.audio) this.showMediaProblem(firstError);
        return stream;
      } catch (error) {
        firstError ??= error;
        // Refused by the user: asking again for less will not help.
        if (error?.name === 'NotAllowedError') break;
      }
    }
    this.showMediaProblem(firstError);
    return null;
  }

  showMediaProblem(error) {
    if (!this.mediaNotice || !error) return;
    this.mediaError = error;
    this.mediaNotice.hidden = false;
    this.mediaNotice.dataset.error = error.name || 'Error';
    this.mediaNotice.textContent = tr('room.statusNoMedia', { message: error.message || error.name });
  }

  /** One room per consultation in this browser: a room opened in another tab or
   *  window takes over (the broker keeps one connection per user, and two rooms
   *  would take it from each other in turn). */
  claimWindow() {
    if (typeof BroadcastChannel !== 'function') return;
    this.windowId = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    this.windows = new BroadcastChannel('teleconsult-room');
    this.windows.onmessage = (event) => {
      const { consultationId, windowId } = event.data || {};
      if (consultationId === this.consultationId && windowId !== this.windowId && !this.finished) {
        this.finished = true;
        this.finish('elsewhere', 'room.statusElsewhere', null);
      }
    };
    this.windows.postMessage({ consultationId: this.consultationId, windowId: this.windowId });
  }

  myName() {
    const user = this.ctx.user;
    if (!user) return this.me;
    const zh = user.display_name_zh ?? '';
    const en = user.display_name_en ?? '';
    return [zh, en].filter(Boolean).join(' ') || this.me;
  }

  async loadConsultation() {
    try {
      const consultation = await this.unary(SCHEDULING, 'GetConsultation', { id: this.consultationId });
      this.consultation = consultation;
      this.isAssignedDoctor = !!consultation && consultation.doctor_id === this.me;
      if (this.me && this.isAssignedDoctor) this.myRole = 'doctor';
      else if ((consultation?.additional_doctor_ids ?? []).includes(this.me)) this.myRole = 'additional_doctor';
      const own = this.participants.get(this.me);
      if (own) { own.info.role = this.myRole; this.updateTile(own); }
      if (!this.destroyed) this.updateControls();
    } catch {
      // The room works without it; only the doctor's controls stay hidden.
    }
  }

  /** Opens the session (again): a new `Open` stream and a new peer connection. */
  open() {
    if (this.finished || this.destroyed) return;
    this.waitingToReopen = false;
    const generation = ++this.generation;
    this.teardownConnection();
    this.abort = new AbortController();
    this.channel = null;
    this.publishMids = null;
    this.publisherByMid.clear();
    this.publisherByTrack.clear();
    this.remoteCandidates = [];
    this.signalChain = Promise.resolve();
    this.offerChain = Promise.resolve();
    this.pc = this.createPeerConnection(generation);
    if (!this.mediaError) this.setStatus('connecting', 'room.statusConnecting');
    const signal = this.abort.signal;
    this.serverStream(SESSION, 'Open', { consultation_id: this.consultationId }, {
      onMessage: (message) => { if (generation === this.generation) this.onBrokerMessage(message, generation); },
      signal,
    }).then(
      () => this.streamClosed(generation, null),
      (error) => this.streamClosed(generation, error),
    );
  }

  streamClosed(generation, error) {
    if (generation !== this.generation || this.finished || this.destroyed) return;
    if (this.abort?.signal.aborted) return;
    if (error && isGrpcError(error) && PERMANENT.has(codeName(error))) {
      // The broker refused us (no consent, outside the window, not a participant…).
      this.fail(error);
      return;
    }
    // A network drop, a broker restart or a stream that ended without `ended`.
    this.scheduleReopen();
  }

  scheduleReopen() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.teardownConnection();
    this.setStatus('reconnecting', 'room.statusReconnecting', { seconds: Math.round(delay / 1000), attempt: this.attempt });
    this.reopen(delay);
  }

  reopen(delay) {
    clearTimeout(this.reopenTimer);
    this.waitingToReopen = true;
    this.reopenTimer = setTimeout(() => this.open(), delay);
  }

  teardownConnection() {
    clearTimeout(this.disconnectedTimer);
    clearTimeout(this.restartTimer);
    this.disconnectedTimer = null;
    this.restartTimer = null;
    if (this.abort) { try { this.abort.abort(); } catch { /* already */ } }
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.ontrack = null;
      this.pc.oniceconnectionstatechange = null;
      this.pc.onconnectionstatechange = null;
      try { this.pc.close(); } catch { /* closed */ }
      this.pc = null;
    }
    for (const entry of this.participants.values()) {
      if (entry.info.user_id !== this.me) { entry.stream = null; this.updateTile(entry); }
    }
  }

  createPeerConnection(generation) {
    // No STUN or TURN: the broker's candidates come by signaling and it is the only peer.
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onicecandidate = (event) => {
      if (generation !== this.generation) return;
      const c = event.candidate;
      if (!c || !c.candidate) return; // end of candidates
      this.signal({
        candidate: {
          candidate: c.candidate,
          sdp_mid: c.sdpMid ?? '',
          sdp_mline_index: c.sdpMLineIndex ?? 0,
          username_fragment: c.usernameFragment ?? '',
        },
      }, generation);
    };
    pc.ontrack = (event) => {
      if (generation !== this.generation) return;
      const stream = event.streams[0];
      const publisher = stream?.id;
      const mid = event.transceiver?.mid;
      if (!publisher || publisher === '-') return;
      if (mid != null) this.publisherByMid.set(mid, publisher);
      this.publisherByTrack.set(event.track.id, publisher);
      const entry = this.participants.get(publisher) ?? this.participant({ user_id: publisher, role: '', display_name: publisher });
      entry.stream = stream;
      stream.onremovetrack = () => this.updateTile(entry);
      stream.onaddtrack = () => this.updateTile(entry);
      this.updateTile(entry);
    };
    pc.oniceconnectionstatechange = () => {
      if (generation !== this.generation) return;
      this.iceStateChanged(pc.iceConnectionState, generation);
    };
    return pc;
  }

  iceStateChanged(state, generation) {
    switch (state) {
      case 'connected':
      case 'completed':
        clearTimeout(this.disconnectedTimer);
        clearTimeout(this.restartTimer);
        this.disconnectedTimer = null;
        this.restartTimer = null;
        this.attempt = 0;
        this.endedReason = null;
        this.setStatus('connected', 'room.statusConnected');
        break;
      case 'disconnected':
        // Often a blip on a lossy link: give it a moment before restarting ICE.
        if (!this.disconnectedTimer) {
          this.disconnectedTimer = setTimeout(() => {
            this.disconnectedTimer = null;
            if (generation === this.generation && this.pc?.iceConnectionState === 'disconnected') this.restartIce(generation);
          }, DISCONNECTED_GRACE_MS);
        }
        this.setStatus('restarting', 'room.statusRestarting');
        break;
      case 'failed':
        this.restartIce(generation);
        break;
      default:
        break;
    }
  }

  restartIce(generation) {
    if (generation !== this.generation || this.finished) return;
    this.setStatus('restarting', 'room.statusRestarting');
    this.signal({ restart_ice: true }, generation);
    // If the fresh offer does not bring the connection back, open the session again.
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (generation !== this.generation || this.finished) return;
      const state = this.pc?.iceConnectionState;
      if (state !== 'connected' && state !== 'completed') this.scheduleReopen();
    }, RESTART_TIMEOUT_MS);
  }

  /** Sends one message on our channel; in order, since the broker needs the answer
   *  before our candidates. A closed channel (NOT_FOUND) or a network error reopens. */
  signal(message, generation = this.generation) {
    this.signalChain = this.signalChain.then(async () => {
      if (generation !== this.generation || !this.channel) return;
      try {
        await this.unary(SESSION, 'Signal', { channel: this.channel, message });
      } catch (error) {
        if (generation !== this.generation || this.finished || this.destroyed) return;
        const code = codeName(error);
        if (message.leave) return;
        if (code === 'NOT_FOUND' || !isGrpcError(error) || code === 'UNAVAILABLE') {
          this.scheduleReopen();
        } else {
          console.warn('teleconsult room: signal refused', code, error?.message);
        }
      }
    });
    return this.signalChain;
  }

  onBrokerMessage(message, generation) {
    if (message.joined) {
      this.channel = message.joined.channel;
      const present = new Set([this.me]);
      for (const info of message.joined.participants ?? []) {
        present.add(info.user_id);
        this.participant(info);
      }
      for (const user of [...this.participants.keys()]) if (!present.has(user)) this.removeParticipant(user);
      // After a reconnect the others must hear our mute state again.
      if (this.micMuted || this.cameraOff || this.audioOnly) this.sendMute();
    } else if (message.description) {
      if (message.description.type === 'offer') {
        const sdp = message.description.sdp;
        this.offerChain = this.offerChain.then(() => this.answer(sdp, generation)).catch((error) => {
          console.error('teleconsult room: could not answer the offer', error);
          if (generation === this.generation) this.scheduleReopen();
        });
      }
    } else if (message.candidate) {
      const c = message.candidate;
      const init = {
        candidate: c.candidate,
        sdpMid: c.sdp_mid || null,
        sdpMLineIndex: c.sdp_mid ? (c.sdp_mline_index ?? null) : (c.sdp_mline_index ?? 0),
        usernameFragment: c.username_fragment || null,
      };
      if (this.pc?.remoteDescription) this.pc.addIceCandidate(init).catch(() => {});
      else this.remoteCandidates.push(init);
    } else if (message.participant_joined) {
      this.participant(message.participant_joined);
    } else if (message.participant_left) {
      this.removeParticipant(message.participant_left.user_id);
    } else if (message.mute) {
      const entry = this.participants.get(message.mute.user_id);
      if (entry) {
        entry.audio_muted = !!message.mute.state?.audio_muted;
        entry.video_muted = !!message.mute.state?.video_muted;
        this.updateTile(entry);
      }
    } else if (message.ended?.replaced) {
      // The same user joined again elsewhere (another tab or device): that connection
      // has the session now; reconnecting from here would take it back.
      this.endedReason = message.ended.reason;
      this.finished = true;
      this.finish('replaced', 'room.statusReplaced', message.ended.reason);
    } else if (message.ended) {
      this.ended(message.ended.reason);
    }
  }

  async answer(sdp, generation) {
    const pc = this.pc;
    if (generation !== this.generation || !pc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    for (const candidate of this.remoteCandidates.splice(0)) pc.addIceCandidate(candidate).catch(() => {});
    const offered = sections(sdp);
    if (!this.publishMids) {
      // The broker's receive-only sections in its first offer carry our media, for
      // the whole connection (a removed forwarded track may later turn recvonly too).
      const audio = offered.find((s) => s.kind === 'audio' && s.direction === 'recvonly');
      const video = offered.find((s) => s.kind === 'video' && s.direction === 'recvonly');
      this.publishMids = { audio: audio?.mid ?? null, video: video?.mid ?? null };
    }
    const byMid = new Map(offered.map((s) => [s.mid, s]));
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.stopped || transceiver.mid == null) continue;
      const section = byMid.get(transceiver.mid);
      if (transceiver.mid === this.publishMids.audio) {
        await this.attach(transceiver, this.audioTrack, !!this.audioTrack);
      } else if (transceiver.mid === this.publishMids.video) {
        await this.attach(transceiver, this.audioOnly ? null : this.videoTrack, !!this.videoTrack);
      } else if (section && (section.direction === 'sendonly' || section.direction === 'sendrecv')) {
        if (section.msid) this.publisherByMid.set(transceiver.mid, section.msid);
        // Audio only: refuse the others' video, so that the broker stops sending it.
        transceiver.direction = section.kind === 'video' && this.audioOnly ? 'inactive' : 'recvonly';
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (generation !== this.generation) return;
    await this.signal({ description: { type: 'answer', sdp: pc.localDescription.sdp } }, generation);
  }

  async attach(transceiver, track, device) {
    if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
    if (this.localStream && transceiver.sender.setStreams) transceiver.sender.setStreams(this.localStream);
    // Without the device, nothing to send. Otherwise the section stays ours even while
    // no track is on it (audio only): the track comes back by replaceTrack alone.
    transceiver.direction = device ? 'sendonly' : 'inactive';
  }

  // ---- controls ---------------------------------------------------------------

  sendMute() {
    this.signal({ mute: { audio_muted: this.micMuted, video_muted: this.cameraOff || this.audioOnly } });
  }

  toggleMic() {
    if (!this.audioTrack) return;
    this.micMuted = !this.micMuted;
    this.audioTrack.enabled = !this.micMuted;
    this.sendMute();
    this.updateControls();
  }

  toggleCamera() {
    if (!this.videoTrack) return;
    this.cameraOff = !this.cameraOff;
    this.videoTrack.enabled = !this.cameraOff; // black frames, the camera idles
    this.sendMute();
    this.updateControls();
  }

  async toggleAudioOnly() {
    this.audioOnly = !this.audioOnly;
    // Our camera: not sent at all (no RTP), which replaceTrack does at once.
    const video = this.pc?.getTransceivers().find((t) => t.mid != null && t.mid === this.publishMids?.video);
    if (video) await video.sender.replaceTrack(this.audioOnly ? null : this.videoTrack).catch(() => {});
    // The others' video: hidden now; refused in our next answer, for which we ask.
    // The broker only offers, so a new offer is requested with `restart_ice` (the
    // only request for one); the broker then stops forwarding video to us.
    this.sendMute();
    this.updateControls();
    if (this.channel) this.signal({ restart_ice: true });
  }

  async leave() {
    if (this.finished) return;
    this.finished = true;
    const generation = this.generation;
    await Promise.race([this.signal({ leave: true }, generation), new Promise((r) => setTimeout(r, 1500))]);
    this.finish('left', 'room.statusLeft', null);
  }

  async endSession() {
    if (this.finished) return;
    if (!window.confirm(tr('room.endConfirm'))) return;
    this.endButton.disabled = true;
    try {
      await this.unary(SESSION, 'EndSession', { consultation_id: this.consultationId });
      // `ended` arrives on the stream; if the stream is down, end here too.
      setTimeout(() => { if (!this.finished && this.endedReason == null) this.ended(''); }, 3000);
    } catch (error) {
      this.endButton.disabled = false;
      this.setStatus(this.status.dataset.state, 'room.endFailed', { message: errorText(error) });
    }
  }

  async invite() {
    const user = this.inviteInput.value.trim();
    if (!user) { this.inviteInput.focus(); return; }
    this.inviteResult.dataset.result = 'pending';
    this.inviteResult.textContent = '…';
    try {
      await this.unary(SCHEDULING, 'InviteParticipant', { id: this.consultationId, user_id: user });
      this.inviteResult.dataset.result = 'ok';
      this.inviteResult.textContent = tr('room.invited', { user });
      this.inviteInput.value = '';
    } catch (error) {
      this.inviteResult.dataset.result = 'error';
      this.inviteResult.textContent = tr('room.inviteFailed', { message: errorText(error) });
    }
  }

  /** The broker closed our connection with a reason. Usually the session is over
   *  (the doctor ended it, everyone left), but a broker that restarts says so too
   *  while the consultation stays in session: then the room opens again. */
  async ended(reason) {
    if (this.finished) return;
    const generation = ++this.generation;
    this.endedReason = reason;
    this.teardownConnection();
    this.setStatus('ending', 'room.statusEnding');
    // The consultation leaves IN_SESSION right after the broker closes the room.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (generation !== this.generation || this.finished) return;
    try {
      const consultation = await this.unary(SCHEDULING, 'GetConsultation', { id: this.consultationId });
      if (generation !== this.generation || this.finished) return;
      const open = ['CONSULTATION_STATE_IN_SESSION', 'CONSULTATION_STATE_SCHEDULED'].includes(consultation?.state);
      if (open) this.scheduleReopen();
      else this.finishEnded();
    } catch (error) {
      if (generation !== this.generation || this.finished) return;
      // The broker is away (restarting): try again as after any drop.
      if (!isGrpcError(error) || codeName(error) === 'UNAVAILABLE') this.scheduleReopen();
      else this.finishEnded();
    }
  }

  finishEnded() {
    this.finished = true;
    this.finish('ended', 'room.statusEnded', this.endedReason ?? '');
  }

  fail(error) {
    // Refused after the broker had ended our connection: the session is over.
    if (this.endedReason != null) { this.finishEnded(); return; }
    this.finished = true;
    this.finish('error', 'room.statusError', null, { message: errorText(error) });
  }

  finish(state, key, reason, params) {
    this.generation += 1;
    clearTimeout(this.reopenTimer);
    this.teardownConnection();
    this.stopLocal();
    clearInterval(this.statsTimer);
    this.setQuality('disconnected', '');
    this.setStatus(state, key, params);
    for (const user of [...this.participants.keys()]) this.removeParticipant(user);
    const own = this.participants.get(this.me);
    if (own) { own.tile.remove(); this.participants.delete(this.me); }
    this.showEnded(state, reason);
    this.updateControls();
    // Nothing left to control or measure.
    this.controls.hidden = true;
    this.quality.hidden = true;
    this.soundButton.hidden = true;
  }

  showEnded(state, reason) {
    this.lastEnded = { state, reason };
    this.endedPanel.hidden = false;
    this.endedPanel.dataset.state = state;
    this.endedPanel.replaceChildren(
      reason ? el('p', { 'data-testid': 'room-ended-reason', text: tr('room.endedReason', { reason }) }) : '',
      el('a', { href: `#/consultation/${encodeURIComponent(this.consultationId)}`, 'data-testid': 'room-back', text: tr('room.back') }),
    );
  }

  stopLocal() {
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
  }

  // ---- quality ------------------------------------------------------------

  setQuality(level, detail) {
    if (!this.quality) return;
    this.quality.dataset.quality = level;
    this.qualityLabel.textContent = tr(QUALITY_KEYS[level]);
    this.qualityDetail.textContent = detail;
    this.qualityDot.style.background = { good: '#2e7d32', fair: '#f9a825', poor: '#c62828', disconnected: '#999' }[level];
  }

  async sampleQuality() {
    const pc = this.pc;
    const ice = pc?.iceConnectionState;
    if (!pc || this.finished || (ice !== 'connected' && ice !== 'completed')) {
      this.lastQualityParams = null;
      this.previous = null;
      this.setQuality('disconnected', '');
      return;
    }
    let report;
    try { report = await pc.getStats(); } catch { return; }
    const now = performance.now();
    let rtt = null;
    let lost = 0; let received = 0; let jitter = 0; let frames = 0; let videoStreams = 0;
    const pairs = new Map();
    let selectedPair = null;
    report.forEach((s) => {
      if (s.type === 'candidate-pair') pairs.set(s.id, s);
      if (s.type === 'transport' && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
      if (s.type === 'inbound-rtp') {
        lost += Math.max(0, s.packetsLost ?? 0);
        received += s.packetsReceived ?? 0;
        jitter = Math.max(jitter, s.jitter ?? 0);
        if (s.kind === 'video' && (s.packetsReceived ?? 0) > 0) { frames += s.framesDecoded ?? 0; videoStreams += 1; }
      }
    });
    const pair = (selectedPair && pairs.get(selectedPair)) || [...pairs.values()].find((p) => p.nominated && p.state === 'succeeded');
    if (pair && pair.currentRoundTripTime != null) rtt = pair.currentRoundTripTime;
    const previous = this.previous;
    this.previous = { at: now, lost, received, frames };
    let loss = 0; let fps = null;
    if (previous) {
      const dLost = lost - previous.lost; const dReceived = received - previous.received;
      loss = dLost + dReceived > 0 ? Math.max(0, dLost) / (dLost + dReceived) : 0;
      if (videoStreams > 0 && !this.audioOnly) fps = ((frames - previous.frames) * 1000) / (now - previous.at) / videoStreams;
    }
    let level = 'good';
    const worse = (to) => { if (to === 'poor' || (to === 'fair' && level === 'good')) level = to; };
    if (rtt != null) { if (rtt > 0.4) worse('poor'); else if (rtt > 0.2) worse('fair'); }
    if (loss > 0.08) worse('poor'); else if (loss > 0.02) worse('fair');
    if (jitter > 0.1) worse('poor'); else if (jitter > 0.05) worse('fair');
    if (fps != null) { if (fps < 5) worse('poor'); else if (fps < 15) worse('fair'); }
    this.lastQualityParams = {
      rtt: formatMs(rtt), loss: `${(loss * 100).toFixed(1)}%`, jitter: formatMs(jitter), fps: fps == null ? '– fps' : `${fps.toFixed(0)} fps`,
    };
    const detail = tr('room.qualityDetail', this.lastQualityParams);
    this.quality.dataset.rtt = rtt == null ? '' : String(Math.round(rtt * 1000));
    this.quality.dataset.loss = loss.toFixed(3);
    this.quality.dataset.fps = fps == null ? '' : fps.toFixed(1);
    this.setQuality(level, detail);
  }

  // ---- tests --------------------------------------------------------------

  /** Inbound media per remote publisher, from the browser's own WebRTC stats. */
  async stats() {
    const pc = this.pc;
    const result = { inboundVideo: [], inboundAudio: [], outbound: [], byPublisher: {}, iceConnectionState: pc?.iceConnectionState ?? 'closed', selectedCandidatePair: null };
    if (!pc) return result;
    const report = await pc.getStats();
    const pairs = new Map();
    const candidates = new Map();
    let selected = null;
    report.forEach((s) => {
      if (s.type === 'candidate-pair') pairs.set(s.id, s);
      if (s.type === 'local-candidate' || s.type === 'remote-candidate') candidates.set(s.id, s);
      if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
    });
    const mids = new Map();
    for (const t of pc.getTransceivers()) if (t.mid != null) mids.set(t.receiver.track.id, t.mid);
    report.forEach((s) => {
      if (s.type === 'outbound-rtp') {
        result.outbound.push({ kind: s.kind, mid: s.mid, packetsSent: s.packetsSent, bytesSent: s.bytesSent, framesEncoded: s.framesEncoded });
        return;
      }
      if (s.type !== 'inbound-rtp') return;
      const mid = s.mid ?? mids.get(s.trackIdentifier);
      const publisher = this.publisherByMid.get(mid) ?? this.publisherByTrack.get(s.trackIdentifier) ?? null;
      const entry = {
        publisher, mid, trackIdentifier: s.trackIdentifier, packetsReceived: s.packetsReceived ?? 0,
        bytesReceived: s.bytesReceived ?? 0, packetsLost: s.packetsLost ?? 0, jitter: s.jitter ?? 0, codecId: s.codecId,
      };
      const totals = publisher ? (result.byPublisher[publisher] ??= {
        videoFramesDecoded: 0, videoPacketsReceived: 0, videoBytesReceived: 0,
        audioPacketsReceived: 0, audioBytesReceived: 0, audioSamplesReceived: 0,
      }) : null;
      if (s.kind === 'video') {
        Object.assign(entry, { framesDecoded: s.framesDecoded ?? 0, framesReceived: s.framesReceived ?? 0, frameWidth: s.frameWidth, frameHeight: s.frameHeight, framesPerSecond: s.framesPerSecond });
        result.inboundVideo.push(entry);
        if (totals) {
          totals.videoFramesDecoded += entry.framesDecoded;
          totals.videoPacketsReceived += entry.packetsReceived;
          totals.videoBytesReceived += entry.bytesReceived;
        }
      } else {
        Object.assign(entry, { totalSamplesReceived: s.totalSamplesReceived ?? 0, audioLevel: s.audioLevel, totalAudioEnergy: s.totalAudioEnergy });
        result.inboundAudio.push(entry);
        if (totals) {
          totals.audioPacketsReceived += entry.packetsReceived;
          totals.audioBytesReceived += entry.bytesReceived;
          totals.audioSamplesReceived += entry.totalSamplesReceived;
        }
      }
    });
    const pair = selected && pairs.get(selected);
    if (pair) {
      const local = candidates.get(pair.localCandidateId);
      const remote = candidates.get(pair.remoteCandidateId);
      result.selectedCandidatePair = {
        currentRoundTripTime: pair.currentRoundTripTime,
        local: local && `${local.protocol} ${local.address}:${local.port} ${local.candidateType}`,
        remote: remote && `${remote.protocol} ${remote.address}:${remote.port} ${remote.candidateType}`,
      };
    }
    return result;
  }

  exposeForTests() {
    const room = this;
    this.exposed = {
      get pc() { return room.pc; },
      get channel() { return room.channel; },
      get generation() { return room.generation; },
      consultationId: room.consultationId,
      stats: () => room.stats(),
      // Cuts the signaling stream as a network drop would: the room did not end it.
      dropSignaling: () => { const cut = room.abort; room.abort = null; cut?.abort(); },
    };
    window.__teleconsultRoom = this.exposed;
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    window.removeEventListener('online', this.onOnline);
    this.windows?.close();
    this.stopLanguage?.();
    if (!this.finished && this.channel) {
      // Leaving the page leaves the session; closing the stream does the same.
      this.unary(SESSION, 'Signal', { channel: this.channel, message: { leave: true } }).catch(() => {});
    }
    this.finished = true;
    this.generation += 1;
    clearTimeout(this.reopenTimer);
    clearInterval(this.statsTimer);
    this.teardownConnection();
    this.stopLocal();
    if (window.__teleconsultRoom === this.exposed) delete window.__teleconsultRoom;
  }
}

/** Mounts the consult room of `consultationId`; returns its unmount. */
export function mount(container, ctx, consultationId) {
  const room = new ConsultRoom(container, ctx, consultationId);
  room.start();
  return () => room.destroy();
}
