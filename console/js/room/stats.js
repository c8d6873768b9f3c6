// The figures behind the test hook `window.__teleconsultRoom.stats()`: inbound media
// per remote publisher, from the browser's own WebRTC stats, with our outbound streams
// and the selected candidate pair. The end-to-end test (tests/console/e2e.mjs) reads
// them to see media flow both ways; the room itself does not use them.

/** `publisherOf(mid, trackIdentifier)` names the user whose media a receiver carries. */
export async function publisherStats(pc, publisherOf) {
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
    const publisher = publisherOf(mid, s.trackIdentifier) ?? null;
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
