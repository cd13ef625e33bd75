/**
 * A TCP proxy that can freeze a connection both ways: the device side and the server side each
 * keep their socket open but nothing crosses any more, as when a NAT or a radio link dies without
 * a FIN. (test/helpers/tcp-proxy.ts stall() stops only the server -> device direction, so a cancel
 * from the device would still reach the server; a half-open device must not be heard either.)
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export class FreezingProxy {
  private readonly pairs: { up: Socket; down: Socket }[] = [];
  private constructor(private readonly server: Server) {}

  static async start(targetPort: number): Promise<FreezingProxy> {
    let proxy!: FreezingProxy;
    const server = createServer((down) => {
      const up = connect({ host: '127.0.0.1', port: targetPort });
      proxy.pairs.push({ up, down });
      down.pipe(up);
      up.pipe(down);
      const close = () => {
        up.destroy();
        down.destroy();
      };
      up.on('error', close).on('close', close);
      down.on('error', close).on('close', close);
    });
    proxy = new FreezingProxy(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Nothing crosses any more, in either direction; both sockets stay open. */
  freeze(): void {
    for (const { up, down } of this.pairs) {
      down.unpipe(up);
      up.unpipe(down);
      up.pause();
      down.pause();
    }
  }

  async close(): Promise<void> {
    for (const { up, down } of this.pairs) {
      up.destroy();
      down.destroy();
    }
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
