// The room's frame on the page: the heading, the status line (its `data-state` says
// where the room is: starting, connecting, connected, restarting, reconnecting,
// ending, then left, ended, replaced, elsewhere or error), the notice about a missing
// camera or microphone, and the panel shown once the room is over. The other parts
// (quality, controls, tiles) are laid out between them.

import { el, tr } from './dom.js';

export class RoomPage {
  constructor(consultationId) {
    this.consultationId = consultationId;
    this.lastStatus = null;
    this.mediaError = null;
    this.lastEnded = null;
  }

  /** Draws the room into `container`, with `parts` between the notices and the
   *  ended panel, in that order. */
  render(container, parts) {
    container.replaceChildren();
    this.root = el('section', { className: 'room', 'data-testid': 'room', 'aria-label': tr('room.title') });
    this.heading = el('h1', { text: tr('room.title') });
    this.status = el('p', { className: 'room-status', 'data-testid': 'room-status', role: 'status', 'aria-live': 'polite', 'data-state': 'starting', text: tr('room.statusStarting') });
    this.mediaNotice = el('p', { className: 'room-media-error', 'data-testid': 'room-media-error', role: 'alert', hidden: true });
    this.endedPanel = el('div', { className: 'room-ended', 'data-testid': 'room-ended', hidden: true });
    this.root.append(this.heading, this.status, this.mediaNotice, ...parts, this.endedPanel);
    container.append(this.root);
  }

  retranslate() {
    this.root.setAttribute('aria-label', tr('room.title'));
    this.heading.textContent = tr('room.title');
    if (this.mediaError) this.showMediaProblem(this.mediaError);
    if (this.lastStatus) this.status.textContent = tr(this.lastStatus.key, this.lastStatus.params);
    if (this.endedPanel.firstChild && this.lastEnded) this.showEnded(this.lastEnded.state, this.lastEnded.reason);
  }

  /** The status line's `data-state`. */
  get state() {
    return this.status.dataset.state;
  }

  setStatus(state, key, params) {
    if (!this.status) return;
    this.lastStatus = { key, params };
    this.status.dataset.state = state;
    this.status.textContent = tr(key, params);
  }

  showMediaProblem(error) {
    if (!this.mediaNotice || !error) return;
    this.mediaError = error;
    this.mediaNotice.hidden = false;
    this.mediaNotice.dataset.error = error.name || 'Error';
    this.mediaNotice.textContent = tr('room.statusNoMedia', { message: error.message || error.name });
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
}
