/**
 * Coalesced writes for the sessions of one host (the gateway, the SSE hub): a session marked dirty
 * is flushed once at the end of the current event-loop turn, however many delivery reports and
 * results touched it during that turn, so a device gets one message per turn, not one per event.
 */
import type { DeviceSession } from './session.js';

export class FlushScheduler {
  /** Invariant: non-empty only while a flush is scheduled. */
  private readonly dirty = new Set<DeviceSession>();
  private scheduled = false;

  mark(session: DeviceSession): void {
    this.dirty.add(session);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (const s of this.dirty) s.flush();
      this.dirty.clear();
    });
  }

  /** The session ended: nothing more to flush for it. */
  forget(session: DeviceSession): void {
    this.dirty.delete(session);
  }
}
