/**
 * A fault-injecting TCP proxy for the fault suite: listens on 127.0.0.1 (port 0) and forwards each
 * connection to one of its targets. Between the engine and Kafka or Redis it injects the network
 * faults of issue 7; in front of two gateways it is the devices' balancer.
 *
 *   latency(ms)   every chunk, both directions, is held ms before it is written (order kept)
 *   reset()       every open connection is ended with a TCP RST, both sides
 *   blackhole()   connections stay open (new ones are accepted) but no byte moves either way:
 *                 what a peer sees when a link drops packets; heal() delivers what was held,
 *                 as TCP retransmission would after a short partition
 *   holdReplies() the same, for the target's bytes only: requests arrive and run, their replies
 *                 wait (with reset() after it: a request that ran and whose reply was lost)
 *   down()        every open connection is reset and new ones are refused (counted in refused):
 *                 the server is gone, as its clients' reconnect attempts see it
 *   heal()        no latency, no blackhole, connections accepted again
 *
 * Targets: a new connection goes to the next target round-robin; if that target refuses, the
 * next one is tried. So with two gateways behind it, the devices of a dead gateway reconnect to
 * the live one (the simplest stand-in for a load balancer with health checks).
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

interface Pipe {
  up: Socket;
  down: Socket;
  /** Writes what is due; called again on heal and by its own timer for latency. */
  flush: () => void;
}

export class FaultProxy {
  private readonly pipes = new Set<Pipe>();
  private latencyMs = 0;
  /** Directions held: requests (client to target) and replies (target to client). */
  private holding = { requests: false, replies: false };
  private refusing = false;
  /** Connections refused while down(): the clients' reconnect attempts. */
  refused = 0;
  private next = 0;
  private constructor(
    private readonly server: Server,
    private readonly targets: number[],
  ) {}

  static async start(targetPorts: number | number[], host = '127.0.0.1'): Promise<FaultProxy> {
    const targets = Array.isArray(targetPorts) ? targetPorts : [targetPorts];
    const server = createServer({ pauseOnConnect: true });
    const proxy = new FaultProxy(server, targets);
    server.on('connection', (down) => proxy.accept(down, host));
    await new Promise<void>((r) => server.listen(0, host, r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  latency(ms: number): void {
    this.latencyMs = ms;
  }

  blackhole(): void {
    this.holding = { requests: true, replies: true };
  }

  holdReplies(): void {
    this.holding = { requests: false, replies: true };
  }

  heal(): void {
    this.latencyMs = 0;
    this.holding = { requests: false, replies: false };
    this.refusing = false;
    for (const p of this.pipes) p.flush();
  }

  /** Ends every open connection with an RST on both sides. */
  reset(): void {
    for (const p of [...this.pipes]) {
      p.down.resetAndDestroy();
      p.up.resetAndDestroy();
      this.pipes.delete(p);
    }
  }

  /** Resets every open connection and refuses new ones until heal(). */
  down(): void {
    this.refusing = true;
    this.reset();
  }

  get connections(): number {
    return this.pipes.size;
  }

  async close(): Promise<void> {
    for (const p of this.pipes) {
      p.up.destroy();
      p.down.destroy();
    }
    this.pipes.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(down: Socket, host: string): void {
    if (this.refusing) {
      this.refused++;
      down.resetAndDestroy();
      return;
    }
    const first = this.next++ % this.targets.length;
    const tryTarget = (i: number): void => {
      if (i === this.targets.length) {
        down.resetAndDestroy();
        return;
      }
      const up = connect({ host, port: this.targets[(first + i) % this.targets.length]! });
      const refused = () => tryTarget(i + 1);
      up.once('error', refused);
      up.once('connect', () => {
        up.off('error', refused);
        this.join(down, up);
      });
    };
    down.on('error', () => down.destroy());
    tryTarget(0);
  }

  private join(down: Socket, up: Socket): void {
    up.setNoDelay(true);
    down.setNoDelay(true);
    const queues: { src: Socket; dst: Socket; held: () => boolean; q: { at: number; buf: Buffer }[]; timer: NodeJS.Timeout | null }[] = [
      { src: down, dst: up, held: () => this.holding.requests, q: [], timer: null },
      { src: up, dst: down, held: () => this.holding.replies, q: [], timer: null },
    ];
    const flush = () => {
      for (const d of queues) {
        if (d.held()) {
          // Hold: stop reading, so the sender's TCP window fills as it would on a dead link.
          d.src.pause();
          continue;
        }
        const now = Date.now();
        while (d.q.length > 0 && d.q[0]!.at <= now) d.dst.write(d.q.shift()!.buf);
        if (d.q.length > 0 && d.timer === null) {
          d.timer = setTimeout(() => {
            d.timer = null;
            flush();
          }, d.q[0]!.at - now);
        }
        d.src.resume();
      }
    };
    const pipe: Pipe = { up, down, flush };
    this.pipes.add(pipe);
    for (const d of queues) {
      d.src.on('data', (buf: Buffer) => {
        d.q.push({ at: Date.now() + this.latencyMs, buf });
        flush();
      });
    }
    const close = (err?: Error) => {
      if (!this.pipes.delete(pipe)) return;
      for (const d of queues) if (d.timer !== null) clearTimeout(d.timer);
      // An error or RST passes on as an RST; a normal close lets the other side's writes finish.
      if (err !== undefined) {
        up.destroy();
        down.destroy();
      } else {
        up.end();
        down.end();
      }
    };
    // A FIN after data: what was received from that side is still owed to the other, then its FIN.
    for (const d of queues) {
      d.src.on('end', () => {
        if (!d.held()) for (const c of d.q.splice(0)) d.dst.write(c.buf);
        d.dst.end();
      });
    }
    for (const s of [up, down]) {
      s.on('error', (err) => close(err));
      s.on('close', () => close());
    }
    flush();
  }
}
