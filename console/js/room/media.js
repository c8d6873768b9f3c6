// Our camera and microphone: opened once when the room starts and kept across
// reconnects, and what we chose to send (microphone muted, camera off, audio only).

const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25, max: 30 } };

export class LocalMedia {
  constructor() {
    this.stream = null;
    this.audioTrack = null;
    this.videoTrack = null;
    this.micMuted = false;
    this.cameraOff = false;
    this.audioOnly = false;
  }

  /** Camera and microphone; failing that either one (a clinic PC without a camera
   *  still talks); failing both, the room only receives. `onProblem(error)` is told
   *  what is missing. */
  async open(onProblem) {
    this.stream = await this.request(onProblem);
    this.audioTrack = this.stream?.getAudioTracks()[0] ?? null;
    this.videoTrack = this.stream?.getVideoTracks()[0] ?? null;
  }

  async request(onProblem) {
    let firstError = null;
    for (const constraints of [{ audio: AUDIO, video: VIDEO }, { audio: AUDIO }, { video: VIDEO }]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (!constraints.video || !constraints.audio) onProblem(firstError);
        return stream;
      } catch (error) {
        firstError ??= error;
        // Refused by the user: asking again for less will not help.
        if (error?.name === 'NotAllowedError') break;
      }
    }
    onProblem(firstError);
    return null;
  }

  /** Releases the devices (the browser's camera light goes out). */
  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
  }

  /** What the others see of our picture: off while the camera is off or audio only. */
  get videoMuted() {
    return this.cameraOff || this.audioOnly;
  }

  /** The track for our camera's section: none while audio only. */
  get sentVideo() {
    return this.audioOnly ? null : this.videoTrack;
  }

  /** Our mute state as the `mute` signal carries it. */
  muteState() {
    return { audio_muted: this.micMuted, video_muted: this.videoMuted };
  }

  /** Mutes or unmutes the microphone; false when there is none. */
  toggleMic() {
    if (!this.audioTrack) return false;
    this.micMuted = !this.micMuted;
    this.audioTrack.enabled = !this.micMuted;
    return true;
  }

  /** Turns the camera off or on; false when there is none. */
  toggleCamera() {
    if (!this.videoTrack) return false;
    this.cameraOff = !this.cameraOff;
    this.videoTrack.enabled = !this.cameraOff; // black frames, the camera idles
    return true;
  }
}
