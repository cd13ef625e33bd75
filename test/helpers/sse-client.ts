/**
 * A Server-Sent Events reader for tests, on node:http: parses `id:`, `event:`, `data:` and comment
 * lines as the EventSource spec does, and keeps everything it read.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as tlsRequest, type RequestOptions as TlsRequestOptions } from 'node:https';

export interface SseEvent { id: string | null; event: string; data: string }

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  ended = false;
  private req: ClientRequest | null = null;
  private res: IncomingMessage | null = null;
  private rest = '';
  private waiters: (() => void)[] = [];

  /** Resolves once response headers arrived (any status). */
  open(url: string, headers: Record<string, string> = {}, tls: Pick<TlsRequestOptions, 'ca' | 'cert' | 'key'> = {}): Promise<this> {
    return new Promise((resolve, reject) => {
      const send = url.startsWith('https:') ? (u: string, o: object, cb: (res: IncomingMessage) => void) => tlsRequest(u, { ...o, ...tls }, cb) : request;
      this.req = send(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.parse(chunk));
        res.on('end', () => {
          this.ended = true;
          this.wake();
        });
        res.on('error', () => {});
        resolve(this);
      });
      this.req.on('error', reject);
      this.req.end();
    });
  }

  /** The whole body of a non-SSE answer (a 400's text). */
  async text(): Promise<string> {
    await this.until(() => this.ended, 5000, 'the end of the response');
    return this.rest;
  }

  /** Stops reading from the socket (TCP backpressure reaches the server). */
  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  close(): void {
    this.req?.destroy();
  }

  /** Results are default events (`message`, no `event:` line); `end` and the rest are named. */
  resultEvents(): SseEvent[] {
    return this.events.filter((e) => e.event === 'message');
  }

  results(): { seq: number; value: number }[] {
    return this.resultEvents().map((e) => JSON.parse(e.data) as { seq: number; value: number });
  }

  private parse(chunk: string): void {
    if (this.status !== 200) {
      this.rest += chunk;
      return;
    }
    this.rest += chunk;
    let at: number;
    while ((at = this.rest.indexOf('\n\n')) >= 0) {
      const block = this.rest.slice(0, at);
      this.rest = this.rest.slice(at + 2);
      let id: string | null = null;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) this.events.push({ id, event, data: data.join('\n') });
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`SSE: timed out waiting for ${what} (${this.events.length} events, status ${this.status}, ended ${this.ended})`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
}
