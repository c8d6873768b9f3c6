// The signaling session with the broker (proto/teleconsult/v1/session.proto): `Open` is
// the broker's half of the session, `Signal` carries ours, one message at a time and in
// order. Every open of the session has a new generation and a new peer connection
// (./peer.js); callbacks that belong to an older generation compare it and stop.
//
// Reconnecting: an ICE drop asks the broker for a fresh offer (`restart_ice`); a broken
// `Open` stream is opened again with backoff and the peer connection rebuilt, without
// the user doing anything. The camera and microphone are kept across both.

import { Peer } from './peer.js';
import { SESSION, codeName, isGrpcError, isRefusal } from './rpc.js';

// An ICE `disconnected` that lasts this long asks for an ICE restart.
const DISCONNECTED_GRACE_MS = 3000;
// An ICE restart that has not reconnected by then: open the session again.
const RESTART_TIMEOUT_MS = 20000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

export class SignalingSession {
  /** `room` (./room.js) makes the calls (`unary`, `serverStream`), holds our media and
   *  the tiles, shows the status, hears the broker's messages and ends on a refusal. */
  constructor(room) {
    this.room = room;
    this.generation = 0; // bumped by every (re)open; stale callbacks compare it
    this.channel = null;
    this.abort = null;
    this.peer = null;
    this.signalChain = Promise.resolve();
    this.attempt = 0;
    this.disconnectedTimer = null;
    this.restartTimer = null;
    this.reopenTimer = null;
    this.waitingToReopen = false;
    this.onOnline = () => { if (this.waitingToReopen) this.reopen(0); };
  }

  /** Whatever is under way stops where it is (the room ends, or waits to see whether
   *  it has); returns the new generation, for a caller that goes on waiting. */
  invalidate() {
    this.generation += 1;
    return this.generation;
  }

  /** Opens the session (again): a new `Open` stream and a new peer connection. */
  open() {
    const room = this.room;
    if (room.finished || room.destroyed) return;
    this.waitingToReopen = false;
    const generation = ++this.generation;
    this.teardown();
    this.abort = new AbortController();
    this.channel = null;
    this.signalChain = Promise.resolve();
    this.peer = new Peer({
      session: this,
      generation,
      media: room.media,
      onRemoteStream: (publisher, stream) => room.tiles.attachStream(publisher, stream),
      onIceState: (state) => this.iceStateChanged(state, generation),
    });
    if (!room.page.mediaError) room.page.setStatus('connecting', 'room.statusConnecting');
    const signal = this.abort.signal;
    room.serverStream(SESSION, 'Open', { consultation_id: room.consultationId }, {
      onMessage: (message) => { if (generation === this.generation) this.receive(message); },
      signal,
    }).then(
      () => this.streamClosed(generation, null),
      (error) => this.streamClosed(generation, error),
    );
  }

  /** A message of the broker's: offers and candidates are for the peer connection,
   *  the rest (who is in the room, mute states, the end) for the room. */
  receive(message) {
    if (message.description) {
      if (message.description.type === 'offer') this.peer.offer(message.description.sdp);
      return;
    }
    if (message.candidate) {
      this.peer.addRemoteCandidate(message.candidate);
      return;
    }
    if (message.joined) this.channel = message.joined.channel;
    this.room.onBrokerMessage(message);
  }

  streamClosed(generation, error) {
    const room = this.room;
    if (generation !== this.generation || room.finished || room.destroyed) return;
    if (this.abort?.signal.aborted) return;
    if (isRefusal(error)) {
      // The broker refused us (no consent, outside the window, not a participant…).
      room.fail(error);
      return;
    }
    // A network drop, a broker restart or a stream that ended without `ended`.
    this.scheduleReopen();
  }

  scheduleReopen() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.teardown();
    this.room.page.setStatus('reconnecting', 'room.statusReconnecting', { seconds: Math.round(delay / 1000), attempt: this.attempt });
    this.reopen(delay);
  }

  reopen(delay) {
    clearTimeout(this.reopenTimer);
    this.waitingToReopen = true;
    this.reopenTimer = setTimeout(() => this.open(), delay);
  }

  cancelReopen() {
    clearTimeout(this.reopenTimer);
  }

  /** Closes the connection: the `Open` stream, the peer connection and its ICE
   *  timers. The others' media leave their tiles; the tiles stay. */
  teardown() {
    clearTimeout(this.disconnectedTimer);
    clearTimeout(this.restartTimer);
    this.disconnectedTimer = null;
    this.restartTimer = null;
    if (this.abort) { try { this.abort.abort(); } catch { /* already */ } }
    this.peer?.close();
    this.room.tiles.dropStreams();
  }

  /** Cuts the `Open` stream as a network drop would (for the test hook): the room did
   *  not end it, so it is opened again. */
  drop() {
    const cut = this.abort;
    this.abort = null;
    cut?.abort();
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
        this.room.endedReason = null;
        this.room.page.setStatus('connected', 'room.statusConnected');
        break;
      case 'disconnected':
        // Often a blip on a lossy link: give it a moment before restarting ICE.
        if (!this.disconnectedTimer) {
          this.disconnectedTimer = setTimeout(() => {
            this.disconnectedTimer = null;
            if (generation === this.generation && this.peer?.pc?.iceConnectionState === 'disconnected') this.restartIce(generation);
          }, DISCONNECTED_GRACE_MS);
        }
        this.room.page.setStatus('restarting', 'room.statusRestarting');
        break;
      case 'failed':
        this.restartIce(generation);
        break;
      default:
        break;
    }
  }

  restartIce(generation) {
    if (generation !== this.generation || this.room.finished) return;
    this.room.page.setStatus('restarting', 'room.statusRestarting');
    this.signal({ restart_ice: true }, generation);
    // If the fresh offer does not bring the connection back, open the session again.
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (generation !== this.generation || this.room.finished) return;
      const state = this.peer?.pc?.iceConnectionState;
      if (state !== 'connected' && state !== 'completed') this.scheduleReopen();
    }, RESTART_TIMEOUT_MS);
  }

  /** Sends one message on our channel; in order, since the broker needs the answer
   *  before our candidates. A closed channel (NOT_FOUND) or a network error reopens. */
  signal(message, generation = this.generation) {
    this.signalChain = this.signalChain.then(async () => {
      if (generation !== this.generation || !this.channel) return;
      try {
        await this.room.unary(SESSION, 'Signal', { channel: this.channel, message });
      } catch (error) {
        if (generation !== this.generation || this.room.finished || this.room.destroyed) return;
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

  /** Leaves at once, outside the queue: the page is going away. */
  leaveNow() {
    if (!this.channel) return;
    this.room.unary(SESSION, 'Signal', { channel: this.channel, message: { leave: true } }).catch(() => {});
  }
}
