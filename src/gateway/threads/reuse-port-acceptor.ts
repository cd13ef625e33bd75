/**
 * The gRPC port of a gateway on a worker thread (`run --shard threads`): a net.Server listening with
 * reusePort on the shared port, each accepted socket handed to this thread's grpc-js Server through
 * its connection injector (Server.createConnectionInjector, grpc-js >= 1.12). The kernel spreads
 * new connections over the threads' listeners; a connection stays on the thread that accepted it.
 *
 * The injector's http2 server never listens itself: grpc-js adds it to the same private
 * `http2Servers` map as a bound one (so http2-servers.ts, the connection guard's per-session limits
 * and the authorization header guard find it), and `injectConnection` emits 'connection' on it, the
 * event Node's http2 (and, with TLS credentials, tls.Server) builds the session from. What an
 * accepted-socket limit needs (net.Server maxConnections, the 'drop' event) lives on this listener,
 * which is why it is returned to the caller.
 */
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Server, ServerCredentials } from '@grpc/grpc-js';

export interface ReusePortAcceptor {
  /** The port bound (the shared one; the first thread's choice when grpc.port is 0). */
  readonly port: number;
  /** The listener: grpc.connectionsMax applies here (maxConnections), not on the injector's http2 server. */
  readonly listener: NetServer;
  /** Stops accepting; the connections already injected stay with grpc-js (its tryShutdown ends them). */
  close(): void;
}

export async function listenReusePort(server: Server, host: string, port: number, credentials: ServerCredentials): Promise<ReusePortAcceptor> {
  const injector = server.createConnectionInjector(credentials);
  // pauseOnConnect false: the socket is handed over within the same turn, before any data event
  // can be emitted, so nothing is read before the http2 (or TLS) server listens on it.
  const listener = createServer({ pauseOnConnect: false }, (socket: Socket) => injector.injectConnection(socket));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    // reusePort: every gateway thread listens on this port (probeReusePort checked the runtime
    // honours it). exclusive: never the cluster's shared handle.
    listener.listen({ host, port, reusePort: true, exclusive: true }, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  return {
    port: (listener.address() as AddressInfo).port,
    listener,
    close: () => {
      // Not awaited: net.Server's close callback waits for every accepted socket to end, and those
      // are ended by the gateway's drain (tryShutdown), which comes after this.
      if (listener.listening) listener.close();
    },
  };
}
