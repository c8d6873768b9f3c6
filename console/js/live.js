// Live consultation events: SchedulingService.Watch, kept open for as long as a page
// shows live data. Watch sends events "from now on", so whenever the stream (re)opens
// the page lists again to catch what happened while it was closed; a broken stream is
// reopened with a growing pause.

import { serverStream, Code } from './grpcweb.js';

const SCHEDULING = 'teleconsult.v1.SchedulingService';

/**
 * Starts watching. `onEvent(ConsultationEvent)` per event; `onOpen()` each time the
 * stream (re)opens (list again then); `onStatus('connecting'|'live'|'retrying'|'stopped',
 * error?)`. Returns stop().
 */
export function watchConsultations({ onEvent, onOpen, onStatus = () => {} }) {
  let stopped = false;
  let controller = null;
  let timer = null;
  let delay = 1000;

  async function run() {
    if (stopped) return;
    controller = new AbortController();
    onStatus('connecting');
    let openedAt = 0;
    try {
      await serverStream(SCHEDULING, 'Watch', {}, {
        signal: controller.signal,
        onOpen: () => {
          openedAt = Date.now();
          onStatus('live');
          if (onOpen) onOpen();
        },
        onMessage: (event) => onEvent(event),
      });
      if (stopped) return;
      onStatus('retrying');
    } catch (error) {
      if (stopped || (error && error.name === 'AbortError')) return;
      // Signed out, or not allowed: reopening would not help.
      if (error.code === Code.UNAUTHENTICATED || error.code === Code.PERMISSION_DENIED) {
        onStatus('stopped', error);
        return;
      }
      onStatus('retrying', error);
    }
    // A stream that stayed open a while starts the pauses afresh.
    if (openedAt && Date.now() - openedAt > 30000) delay = 1000;
    timer = setTimeout(run, delay);
    delay = Math.min(delay * 2, 30000);
  }

  run();
  return function stop() {
    stopped = true;
    clearTimeout(timer);
    if (controller) controller.abort();
  };
}

/** Keeps the newer of two copies of a consultation (by its version). */
export function newer(current, incoming) {
  if (!current) return incoming;
  return Number(incoming.version) >= Number(current.version) ? incoming : current;
}
