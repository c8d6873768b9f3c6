// The room's controls: microphone, camera, audio only and leave for everyone; for the
// consultation's assigned doctor also ending the session for everyone and inviting
// another participant (an interpreter, a colleague) while it runs.

import { el, css, tr } from './dom.js';
import { SESSION, SCHEDULING, errorText } from './rpc.js';

export class Controls {
  /** `room` (./room.js) holds our media, the session and the room's state, and
   *  leaves and ends. */
  constructor(room) {
    this.room = room;
  }

  render() {
    this.muteButton = el('button', { type: 'button', 'data-testid': 'room-mute', 'aria-pressed': 'false', onclick: () => this.toggleMic() });
    this.cameraButton = el('button', { type: 'button', 'data-testid': 'room-camera', 'aria-pressed': 'false', onclick: () => this.toggleCamera() });
    this.audioOnlyButton = el('button', { type: 'button', 'data-testid': 'room-audio-only', 'aria-pressed': 'false', onclick: () => this.toggleAudioOnly() });
    this.leaveButton = el('button', { type: 'button', 'data-testid': 'room-leave', className: 'danger', text: tr('room.leave'), onclick: () => this.room.leave() });
    this.endButton = el('button', { type: 'button', 'data-testid': 'room-end', className: 'danger', text: tr('room.end'), hidden: true, onclick: () => this.endSession() });
    this.toolbar = css(el('div', { className: 'room-controls', role: 'toolbar', 'aria-label': tr('room.title') },
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
  }

  retranslate() {
    this.toolbar.setAttribute('aria-label', tr('room.title'));
    this.leaveButton.textContent = tr('room.leave');
    this.endButton.textContent = tr('room.end');
    this.inviteLabel.textContent = tr('room.inviteUser');
    this.inviteButton.textContent = tr('room.invite');
  }

  /** Labels, pressed states and what can be used now. */
  update() {
    const { media, finished, isAssignedDoctor } = this.room;
    const noAudio = !media.audioTrack;
    const noVideo = !media.videoTrack;
    this.muteButton.textContent = media.micMuted ? tr('room.unmute') : tr('room.mute');
    this.muteButton.setAttribute('aria-pressed', String(media.micMuted));
    this.muteButton.disabled = noAudio || finished;
    this.cameraButton.textContent = media.cameraOff ? tr('room.cameraOn') : tr('room.cameraOff');
    this.cameraButton.setAttribute('aria-pressed', String(media.cameraOff));
    this.cameraButton.disabled = noVideo || media.audioOnly || finished;
    this.audioOnlyButton.textContent = media.audioOnly ? tr('room.audioOnlyOff') : tr('room.audioOnly');
    this.audioOnlyButton.setAttribute('aria-pressed', String(media.audioOnly));
    this.audioOnlyButton.disabled = finished;
    this.leaveButton.disabled = finished;
    this.endButton.hidden = !isAssignedDoctor;
    this.endButton.disabled = finished;
    this.inviteForm.hidden = !isAssignedDoctor || finished;
  }

  /** Nothing left to control. */
  hide() {
    this.toolbar.hidden = true;
  }

  toggleMic() {
    if (!this.room.media.toggleMic()) return;
    this.room.sendMute();
    this.room.updateControls();
  }

  toggleCamera() {
    if (!this.room.media.toggleCamera()) return;
    this.room.sendMute();
    this.room.updateControls();
  }

  async toggleAudioOnly() {
    const { media, session } = this.room;
    media.audioOnly = !media.audioOnly;
    // Our camera: not sent at all (no RTP), which replaceTrack does at once.
    const camera = session.peer?.cameraTransceiver();
    if (camera) await camera.sender.replaceTrack(media.sentVideo).catch(() => {});
    // The others' video: hidden now; refused in our next answer, for which we ask.
    // The broker only offers, so a new offer is requested with `restart_ice` (the
    // only request for one); the broker then stops forwarding video to us.
    this.room.sendMute();
    this.room.updateControls();
    if (session.channel) session.signal({ restart_ice: true });
  }

  async endSession() {
    const room = this.room;
    if (room.finished) return;
    if (!window.confirm(tr('room.endConfirm'))) return;
    this.endButton.disabled = true;
    try {
      await room.unary(SESSION, 'EndSession', { consultation_id: room.consultationId });
      // `ended` arrives on the stream; if the stream is down, end here too.
      setTimeout(() => { if (!room.finished && room.endedReason == null) room.ended(''); }, 3000);
    } catch (error) {
      this.endButton.disabled = false;
      room.page.setStatus(room.page.state, 'room.endFailed', { message: errorText(error) });
    }
  }

  async invite() {
    const room = this.room;
    const user = this.inviteInput.value.trim();
    if (!user) { this.inviteInput.focus(); return; }
    this.inviteResult.dataset.result = 'pending';
    this.inviteResult.textContent = '…';
    try {
      await room.unary(SCHEDULING, 'InviteParticipant', { id: room.consultationId, user_id: user });
      this.inviteResult.dataset.result = 'ok';
      this.inviteResult.textContent = tr('room.invited', { user });
      this.inviteInput.value = '';
    } catch (error) {
      this.inviteResult.dataset.result = 'error';
      this.inviteResult.textContent = tr('room.inviteFailed', { message: errorText(error) });
    }
  }
}
