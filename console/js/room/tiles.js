// The participants' tiles: one per person in the room, ours first, with their picture
// (or their initial), name, role and mute badges, and their sound. Also the line that
// says we are waiting for the others, and the button that resumes sound the browser
// would not play by itself.

import { el, css, tr } from './dom.js';

const ROLE_KEYS = {
  clinic_side: 'room.roleClinicSide',
  doctor: 'room.roleDoctor',
  additional_doctor: 'room.roleAdditionalDoctor',
  interpreter: 'room.roleInterpreter',
};

function roleName(role) {
  const key = ROLE_KEYS[String(role || '').toLowerCase()];
  return key ? tr(key) : String(role || '');
}

export class Tiles {
  /** `room` tells who we are (`me`), our media and whether the room has finished. */
  constructor(room) {
    this.room = room;
    this.participants = new Map(); // user id -> { info, tile, audio_muted, video_muted, stream, … }
  }

  render() {
    this.grid = css(el('div', { className: 'room-tiles', 'data-testid': 'room-tiles' }), {
      display: 'grid', gap: '0.75rem', gridTemplateColumns: 'repeat(auto-fit, minmax(min(100%, 320px), 1fr))', margin: '0.75rem 0',
    });
    this.waiting = el('p', { className: 'room-waiting', 'data-testid': 'room-waiting', text: tr('room.waiting') });
    this.soundButton = el('button', { type: 'button', 'data-testid': 'room-sound', hidden: true, text: tr('room.soundBlocked'), onclick: () => this.resumeSound() });
  }

  retranslate() {
    this.waiting.textContent = tr('room.waiting');
    this.soundButton.textContent = tr('room.soundBlocked');
  }

  /** A participant's tile, made on first sight; `info` (user_id, display_name, role)
   *  is merged into what is known. */
  add(info) {
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
      if (user === this.room.me) this.grid.prepend(tile); else this.grid.append(tile);
    }
    entry.info = { ...entry.info, ...info };
    this.update(entry);
    this.updateWaiting();
    return entry;
  }

  /** Who is in the room, as the broker lists it on joining: those no longer there go. */
  sync(participants) {
    const present = new Set([this.room.me]);
    for (const info of participants ?? []) {
      present.add(info.user_id);
      this.add(info);
    }
    for (const user of [...this.participants.keys()]) if (!present.has(user)) this.remove(user);
  }

  /** Another participant's media arrived (`stream`'s id is their user id). */
  attachStream(publisher, stream) {
    const entry = this.participants.get(publisher) ?? this.add({ user_id: publisher, role: '', display_name: publisher });
    entry.stream = stream;
    stream.onremovetrack = () => this.update(entry);
    stream.onaddtrack = () => this.update(entry);
    this.update(entry);
  }

  /** The connection is gone: the others' media with it, their tiles stay. */
  dropStreams() {
    for (const entry of this.participants.values()) {
      if (entry.info.user_id !== this.room.me) { entry.stream = null; this.update(entry); }
    }
  }

  /** A participant's mute state, from the broker's `mute` message. */
  setMute({ user_id: user, state }) {
    const entry = this.participants.get(user);
    if (entry) {
      entry.audio_muted = !!state?.audio_muted;
      entry.video_muted = !!state?.video_muted;
      this.update(entry);
    }
  }

  /** Our own role, once the consultation says which doctor we are. */
  setOwnRole(role) {
    const own = this.participants.get(this.room.me);
    if (own) { own.info.role = role; this.update(own); }
  }

  updateWaiting() {
    if (this.waiting) this.waiting.hidden = this.room.finished || [...this.participants.keys()].some((user) => user !== this.room.me);
  }

  updateAll() {
    for (const entry of this.participants.values()) this.update(entry);
  }

  update(entry) {
    const { me, media } = this.room;
    const self = entry.info.user_id === me;
    entry.name.textContent = (entry.info.display_name || entry.info.user_id) + (self ? tr('room.you') : '');
    entry.role.textContent = roleName(entry.info.role);
    const audioMuted = self ? media.micMuted : entry.audio_muted;
    const videoMuted = self ? media.videoMuted : entry.video_muted;
    entry.tile.dataset.audioMuted = String(audioMuted);
    entry.tile.dataset.videoMuted = String(videoMuted);
    const badges = [];
    if (audioMuted) badges.push(['mic_off', tr('room.badgeMicOff')]);
    if (videoMuted) badges.push(['camera_off', tr('room.badgeCameraOff')]);
    if (media.audioOnly && !self) badges.push(['audio_only', tr('room.badgeAudioOnly')]);
    entry.badges.replaceChildren(...badges.map(([kind, text]) =>
      css(el('span', { className: `badge badge-${kind}`, 'data-testid': `room-badge-${kind.replace('_', '-')}`, text }), {
        fontSize: '0.8em', padding: '0 0.4em', borderRadius: '4px', background: '#f4d6d6', color: '#6b1111',
      })));
    // Audio only: remote pictures are neither shown nor (once renegotiated) received.
    const showVideo = self ? !!media.videoTrack && !videoMuted : !media.audioOnly && !videoMuted && !!entry.stream;
    const wanted = showVideo ? (self ? media.stream : entry.stream) : null;
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

  remove(user) {
    const entry = this.participants.get(user);
    if (!entry || user === this.room.me) return;
    entry.video.srcObject = null;
    entry.audio.srcObject = null;
    entry.tile.remove();
    this.participants.delete(user);
    this.updateWaiting();
  }

  /** The room is over: every tile goes, ours too. */
  clear() {
    for (const user of [...this.participants.keys()]) this.remove(user);
    const own = this.participants.get(this.room.me);
    if (own) { own.tile.remove(); this.participants.delete(this.room.me); }
  }

  hideSoundButton() {
    this.soundButton.hidden = true;
  }
}
