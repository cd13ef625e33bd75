/**
 * A TCP proxy for tests: listens on 127.0.0.1 (port 0) and forwards each connection to a target.
 * stall() stops reading what the target sends, so the target's writes back up through TCP and
 * HTTP/2 flow control exactly as they would for a device that stopped reading its socket.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly upstreams = new Set<Socket>();
  private readonly downstreams = new Set<Socket>();
  private stalled = false;
  private constructor(private readonly server: Server) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const server = createServer((down) => {
      const up = connect({ host: targetHost, port: targetPort });
      proxy.upstreams.add(up);
      proxy.downstreams.add(down);
      // Small buffers on our side, so a stall shows at the target within a few MiB.
      up.setNoDelay(true);
      down.pipe(up);
      up.pipe(down);
      if (proxy.stalled) up.pause();
      const close = () => {
        up.destroy();
        down.destroy();
        proxy.upstreams.delete(up);
        proxy.downstreams.delete(down);
      };
      up.on('error', close).on('close', close);
      down.on('error', close).on('close', close);
    });
    proxy = new TcpProxy(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops reading from the target: the device side receives nothing more. */
  stall(): void {
    this.stalled = true;
    for (const up of this.upstreams) {
      up.unpipe();
      up.pause();
    }
  }

  /** Reads from the target again. */
  resume(): void {
    this.stalled = false;
    for (const up of this.upstreams) {
      const down = [...this.downstreams][0];
      if (down) up.pipe(down);
      up.resume();
    }
  }

  async close(): Promise<void> {
    for (const s of [...this.upstreams, ...this.downstreams]) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
