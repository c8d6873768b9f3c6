// Our peer connection with the broker's SFU, one per open of the session. The broker
// makes every offer; we only answer. Its first offer has one receive-only audio and one
// receive-only video section for our microphone and camera, then a send-only section
// per track of every other participant, whose stream id (msid) is the publisher's user
// id. Once the session has moved on to a newer connection, this one goes quiet.

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

export class Peer {
  /**
   * `session` (./session.js) carries our signals and says which `generation` is
   * current; `media` (./media.js) is our camera and microphone;
   * `onRemoteStream(publisher, stream)` is told of another participant's media and
   * `onIceState(state)` of every ICE state change.
   */
  constructor({ session, generation, media, onRemoteStream, onIceState }) {
    this.session = session;
    this.generation = generation;
    this.media = media;
    this.onRemoteStream = onRemoteStream;
    this.onIceState = onIceState;
    this.publishMids = null; // { audio, video } our sending sections
    this.publisherByMid = new Map();
    this.publisherByTrack = new Map();
    this.remoteCandidates = []; // until the offer is set
    this.offerChain = Promise.resolve();
    this.pc = this.create();
  }

  current() {
    return this.generation === this.session.generation;
  }

  create() {
    // No STUN or TURN: the broker's candidates come by signaling and it is the only peer.
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onicecandidate = (event) => {
      if (!this.current()) return;
      const c = event.candidate;
      if (!c || !c.candidate) return; // end of candidates
      this.session.signal({
        candidate: {
          candidate: c.candidate,
          sdp_mid: c.sdpMid ?? '',
          sdp_mline_index: c.sdpMLineIndex ?? 0,
          username_fragment: c.usernameFragment ?? '',
        },
      }, this.generation);
    };
    pc.ontrack = (event) => {
      if (!this.current()) return;
      const stream = event.streams[0];
      const publisher = stream?.id;
      const mid = event.transceiver?.mid;
      if (!publisher || publisher === '-') return;
      if (mid != null) this.publisherByMid.set(mid, publisher);
      this.publisherByTrack.set(event.track.id, publisher);
      this.onRemoteStream(publisher, stream);
    };
    pc.oniceconnectionstatechange = () => {
      if (!this.current()) return;
      this.onIceState(pc.iceConnectionState);
    };
    return pc;
  }

  /** Closes the connection; its events are no longer heard. */
  close() {
    if (!this.pc) return;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.onconnectionstatechange = null;
    try { this.pc.close(); } catch { /* closed */ }
    this.pc = null;
  }

  /** The broker's offer, answered after any before it; failing that, the session is
   *  opened again. */
  offer(sdp) {
    this.offerChain = this.offerChain.then(() => this.answer(sdp)).catch((error) => {
      console.error('teleconsult room: could not answer the offer', error);
      if (this.current()) this.session.scheduleReopen();
    });
  }

  /** One of the broker's ICE candidates (as the session message carries it). */
  addRemoteCandidate(c) {
    const init = {
      candidate: c.candidate,
      sdpMid: c.sdp_mid || null,
      sdpMLineIndex: c.sdp_mid ? (c.sdp_mline_index ?? null) : (c.sdp_mline_index ?? 0),
      usernameFragment: c.username_fragment || null,
    };
    if (this.pc?.remoteDescription) this.pc.addIceCandidate(init).catch(() => {});
    else this.remoteCandidates.push(init);
  }

  async answer(sdp) {
    const pc = this.pc;
    if (!this.current() || !pc) return;
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
    const media = this.media;
    const byMid = new Map(offered.map((s) => [s.mid, s]));
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.stopped || transceiver.mid == null) continue;
      const section = byMid.get(transceiver.mid);
      if (transceiver.mid === this.publishMids.audio) {
        await this.attach(transceiver, media.audioTrack, !!media.audioTrack);
      } else if (transceiver.mid === this.publishMids.video) {
        await this.attach(transceiver, media.sentVideo, !!media.videoTrack);
      } else if (section && (section.direction === 'sendonly' || section.direction === 'sendrecv')) {
        if (section.msid) this.publisherByMid.set(transceiver.mid, section.msid);
        // Audio only: refuse the others' video, so that the broker stops sending it.
        transceiver.direction = section.kind === 'video' && media.audioOnly ? 'inactive' : 'recvonly';
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (!this.current()) return;
    await this.session.signal({ description: { type: 'answer', sdp: pc.localDescription.sdp } }, this.generation);
  }

  async attach(transceiver, track, device) {
    if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
    if (this.media.stream && transceiver.sender.setStreams) transceiver.sender.setStreams(this.media.stream);
    // Without the device, nothing to send. Otherwise the section stays ours even while
    // no track is on it (audio only): the track comes back by replaceTrack alone.
    transceiver.direction = device ? 'sendonly' : 'inactive';
  }

  /** The transceiver our camera sends on, once the first offer is answered. */
  cameraTransceiver() {
    return this.pc?.getTransceivers().find((t) => t.mid != null && t.mid === this.publishMids?.video);
  }

  /** The publisher (user id) of a receiver's media, by its mid or track id. */
  publisherOf(mid, trackIdentifier) {
    return this.publisherByMid.get(mid) ?? this.publisherByTrack.get(trackIdentifier);
  }
}
