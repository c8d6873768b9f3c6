// The consult room page (`#/room/<id>`): camera and microphone through the broker's
// SFU. The room itself is in ../room/ (room.js holds it together and lists its parts).
// Its test hooks: the `room-*` data-testids, and `window.__teleconsultRoom`
// (`pc`, `stats()`, `dropSignaling()`) while it is mounted.

import { ConsultRoom } from '../room/room.js';

/** Mounts the consult room of `consultationId`; returns its unmount. */
export function mount(container, ctx, consultationId) {
  const room = new ConsultRoom(container, ctx, consultationId);
  room.start();
  return () => room.destroy();
}
