// The consult room: camera and microphone through the broker's SFU. This is the room
// as a whole: it starts it, keeps its parts in step, hears who comes and goes, and
// ends it (left, ended by the doctor, refused, replaced by another connection of the
// same user, or opened in another window). Its parts:
//   session.js   the signaling session: `Open` and `Signal`, reconnects, ICE restarts
//   peer.js      the peer connection: answers, our tracks, the others' tracks
//   media.js     our camera and microphone, and what we send of them
//   tiles.js     the participants' tiles and their sound
//   controls.js  mute, camera, audio only, leave, end, invite
//   quality.js   the quality indicator
//   stats.js     the figures behind the test hook (window.__teleconsultRoom)
//   page.js      heading, status line, notices, the ended panel
//   dom.js, rpc.js  elements and words; the broker's services and their errors

import { unary, serverStream } from '../grpcweb.js';
import { useTranslator } from './dom.js';
import { SCHEDULING, codeName, isGrpcError, errorText } from './rpc.js';
import { LocalMedia } from './media.js';
import { RoomPage } from './page.js';
import { Tiles } from './tiles.js';
import { Controls } from './controls.js';
import { QualityIndicator } from './quality.js';
import { SignalingSession } from './session.js';
import { publisherStats } from './stats.js';

function sessionRoleOf(principal) {
  switch (principal?.role) {
    case 'ROLE_CLINIC_STAFF': return 'clinic_side';
    case 'ROLE_DOCTOR': return 'doctor';
    case 'ROLE_INTERPRETER': return 'interpreter';
    default: return '';
  }
}

export class ConsultRoom {
  constructor(container, ctx, consultationId) {
    this.container = container;
    this.ctx = ctx;
    this.consultationId = consultationId;
    this.unary = ctx.unary ?? unary;
    this.serverStream = ctx.serverStream ?? serverStream;
    this.me = ctx.principal?.user_id ?? ctx.user?.id ?? '';
    this.myRole = sessionRoleOf(ctx.principal);
    this.isAssignedDoctor = false;
    this.finished = false; // ended, left or refused: no more reconnects
    this.destroyed = false;
    this.endedReason = null; // the broker's, once it closed our connection

    this.media = new LocalMedia();
    this.page = new RoomPage(consultationId);
    this.tiles = new Tiles(this);
    this.controls = new Controls(this);
    this.quality = new QualityIndicator(this);
    this.session = new SignalingSession(this);
  }

  /** The current peer connection, if any. */
  get pc() {
    return this.session.peer?.pc ?? null;
  }

  async start() {
    if (typeof this.ctx.t === 'function') useTranslator(this.ctx.t);
    this.stopLanguage = this.ctx.onLanguageChange?.(() => this.retranslate());
    this.render();
    window.addEventListener('online', this.session.onOnline);
    this.exposeForTests();
    this.loadConsultation();
    this.claimWindow();
    await this.media.open((error) => this.page.showMediaProblem(error));
    if (this.destroyed) { this.media.stop(); return; }
    this.tiles.add({ user_id: this.me, role: this.myRole, display_name: this.myName() });
    this.updateControls();
    this.quality.start();
    this.session.open();
  }

  render() {
    this.quality.render();
    this.controls.render();
    this.tiles.render();
    this.page.render(this.container, [
      this.quality.element, this.controls.toolbar, this.tiles.soundButton,
      this.tiles.waiting, this.tiles.grid, this.controls.inviteForm,
    ]);
    this.updateControls();
  }

  /** Brings the controls and the tiles up to date with our media and the room. */
  updateControls() {
    this.controls.update();
    this.tiles.updateAll();
    this.tiles.updateWaiting();
  }

  /** The console switched language: the room keeps running and translates itself. */
  retranslate() {
    if (!this.page.root || this.destroyed) return;
    this.page.retranslate();
    this.controls.retranslate();
    this.quality.retranslate();
    this.tiles.retranslate();
    this.updateControls();
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
      this.tiles.setOwnRole(this.myRole);
      if (!this.destroyed) this.updateControls();
    } catch {
      // The room works without it; only the doctor's controls stay hidden.
    }
  }

  /** The broker's messages about the room (the session keeps the signaling ones). */
  onBrokerMessage(message) {
    if (message.joined) {
      this.tiles.sync(message.joined.participants);
      // After a reconnect the others must hear our mute state again.
      if (this.media.micMuted || this.media.cameraOff || this.media.audioOnly) this.sendMute();
    } else if (message.participant_joined) {
      this.tiles.add(message.participant_joined);
    } else if (message.participant_left) {
      this.tiles.remove(message.participant_left.user_id);
    } else if (message.mute) {
      this.tiles.setMute(message.mute);
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

  /** Tells the others whether our microphone and camera are on. */
  sendMute() {
    this.session.signal({ mute: this.media.muteState() });
  }

  async leave() {
    if (this.finished) return;
    this.finished = true;
    const generation = this.session.generation;
    await Promise.race([this.session.signal({ leave: true }, generation), new Promise((r) => setTimeout(r, 1500))]);
    this.finish('left', 'room.statusLeft', null);
  }

  /** The broker closed our connection with a reason. Usually the session is over
   *  (the doctor ended it, everyone left), but a broker that restarts says so too
   *  while the consultation stays in session: then the room opens again. */
  async ended(reason) {
    if (this.finished) return;
    const generation = this.session.invalidate();
    this.endedReason = reason;
    this.session.teardown();
    this.page.setStatus('ending', 'room.statusEnding');
    // The consultation leaves IN_SESSION right after the broker closes the room.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (generation !== this.session.generation || this.finished) return;
    try {
      const consultation = await this.unary(SCHEDULING, 'GetConsultation', { id: this.consultationId });
      if (generation !== this.session.generation || this.finished) return;
      const open = ['CONSULTATION_STATE_IN_SESSION', 'CONSULTATION_STATE_SCHEDULED'].includes(consultation?.state);
      if (open) this.session.scheduleReopen();
      else this.finishEnded();
    } catch (error) {
      if (generation !== this.session.generation || this.finished) return;
      // The broker is away (restarting): try again as after any drop.
      if (!isGrpcError(error) || codeName(error) === 'UNAVAILABLE') this.session.scheduleReopen();
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
    this.session.invalidate();
    this.session.cancelReopen();
    this.session.teardown();
    this.media.stop();
    this.quality.close();
    this.page.setStatus(state, key, params);
    this.tiles.clear();
    this.page.showEnded(state, reason);
    this.updateControls();
    // Nothing left to control or measure.
    this.controls.hide();
    this.quality.hide();
    this.tiles.hideSoundButton();
  }

  exposeForTests() {
    const room = this;
    this.exposed = {
      get pc() { return room.pc; },
      get channel() { return room.session.channel; },
      get generation() { return room.session.generation; },
      consultationId: room.consultationId,
      stats: () => publisherStats(room.pc, (mid, track) => room.session.peer?.publisherOf(mid, track)),
      // Cuts the signaling stream as a network drop would: the room did not end it.
      dropSignaling: () => room.session.drop(),
    };
    window.__teleconsultRoom = this.exposed;
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    window.removeEventListener('online', this.session.onOnline);
    this.windows?.close();
    this.stopLanguage?.();
    // Leaving the page leaves the session; closing the stream does the same.
    if (!this.finished) this.session.leaveNow();
    this.finished = true;
    this.session.invalidate();
    this.session.cancelReopen();
    this.quality.stop();
    this.session.teardown();
    this.media.stop();
    if (window.__teleconsultRoom === this.exposed) delete window.__teleconsultRoom;
  }
}
