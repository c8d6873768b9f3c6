// The connection quality indicator: every two seconds the browser's WebRTC stats are
// sampled and the connection classed good, fair or poor by its round trip, loss,
// jitter and frame rate; disconnected while ICE is not connected.

import { el, css, tr } from './dom.js';

const STATS_INTERVAL_MS = 2000;

const QUALITY_KEYS = {
  good: 'room.qualityGood',
  fair: 'room.qualityFair',
  poor: 'room.qualityPoor',
  disconnected: 'room.qualityDisconnected',
};

const COLOURS = { good: '#2e7d32', fair: '#f9a825', poor: '#c62828', disconnected: '#999' };

function formatMs(seconds) {
  return seconds == null ? '–' : `${Math.round(seconds * 1000)} ms`;
}

/** good, fair or poor: the worst that any figure reaches (seconds, a loss fraction,
 *  frames a second; a null figure is not known and counts for nothing). */
export function classify({ rtt, loss, jitter, fps }) {
  let level = 'good';
  const worse = (to) => { if (to === 'poor' || (to === 'fair' && level === 'good')) level = to; };
  if (rtt != null) { if (rtt > 0.4) worse('poor'); else if (rtt > 0.2) worse('fair'); }
  if (loss > 0.08) worse('poor'); else if (loss > 0.02) worse('fair');
  if (jitter > 0.1) worse('poor'); else if (jitter > 0.05) worse('fair');
  if (fps != null) { if (fps < 5) worse('poor'); else if (fps < 15) worse('fair'); }
  return level;
}

export class QualityIndicator {
  /** `room` gives the peer connection (`pc`), whether the room has finished, and our
   *  media (audio only: the frame rate does not count). */
  constructor(room) {
    this.room = room;
    this.previous = null; // the last stats sample, for rates
    this.lastParams = null;
    this.timer = null;
  }

  render() {
    this.element = el('p', { className: 'room-quality', 'data-testid': 'room-quality', 'data-quality': 'disconnected' });
    this.label = el('strong', { text: tr('room.qualityDisconnected') });
    this.detail = el('span', { className: 'room-quality-detail' });
    this.element.append(this.label, ' ', this.detail);
    this.dot = css(el('span', { 'aria-hidden': 'true' }), {
      display: 'inline-block', width: '0.75em', height: '0.75em', borderRadius: '50%', marginRight: '0.4em', background: '#999',
    });
    this.element.prepend(this.dot);
    return this.element;
  }

  retranslate() {
    this.label.textContent = tr(QUALITY_KEYS[this.element.dataset.quality]);
    if (this.lastParams) this.detail.textContent = tr('room.qualityDetail', this.lastParams);
  }

  start() {
    this.timer = setInterval(() => this.sample(), STATS_INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  /** Nothing left to measure: stopped, shown as disconnected, then hidden. */
  close() {
    this.stop();
    this.set('disconnected', '');
  }

  hide() {
    this.element.hidden = true;
  }

  set(level, detail) {
    if (!this.element) return;
    this.element.dataset.quality = level;
    this.label.textContent = tr(QUALITY_KEYS[level]);
    this.detail.textContent = detail;
    this.dot.style.background = COLOURS[level];
  }

  async sample() {
    const pc = this.room.pc;
    const ice = pc?.iceConnectionState;
    if (!pc || this.room.finished || (ice !== 'connected' && ice !== 'completed')) {
      this.lastParams = null;
      this.previous = null;
      this.set('disconnected', '');
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
      if (videoStreams > 0 && !this.room.media.audioOnly) fps = ((frames - previous.frames) * 1000) / (now - previous.at) / videoStreams;
    }
    const level = classify({ rtt, loss, jitter, fps });
    this.lastParams = {
      rtt: formatMs(rtt), loss: `${(loss * 100).toFixed(1)}%`, jitter: formatMs(jitter), fps: fps == null ? '– fps' : `${fps.toFixed(0)} fps`,
    };
    const detail = tr('room.qualityDetail', this.lastParams);
    this.element.dataset.rtt = rtt == null ? '' : String(Math.round(rtt * 1000));
    this.element.dataset.loss = loss.toFixed(3);
    this.element.dataset.fps = fps == null ? '' : fps.toFixed(1);
    this.set(level, detail);
  }
}
