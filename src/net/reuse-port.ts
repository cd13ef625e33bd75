/**
 * Does this runtime's `net` honour `reusePort` (SO_REUSEPORT), so that several listeners (worker
 * threads of one process) can each accept on the same port and the kernel spreads connections over
 * them? Found by trying, not by version: bind a port with reusePort, then a second socket on that
 * same port with reusePort, in this process. Two listeners on port 0 prove nothing (each gets its own
 * port). Node < 22.12 ignores the option: the second bind fails with EADDRINUSE.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';

export interface ReusePortProbe {
  readonly supported: boolean;
  /** Why not, one clause (the second bind's error code), when unsupported. */
  readonly reason: string | null;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // exclusive: in a cluster worker, bind here rather than share the primary's handle (which
    // would succeed twice whatever the runtime).
    server.listen({ host, port, reusePort: true, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

/** Binds two sockets on one port of `host` (the gRPC host) with reusePort; both are closed before it resolves. */
export async function probeReusePort(host: string): Promise<ReusePortProbe> {
  const first = createServer();
  const second = createServer();
  try {
    // The first bind failing is not this probe's business (the start-up port checks name the
    // cause): say so, and the caller refuses with it.
    await listen(first, host, 0);
    const { port } = first.address() as AddressInfo;
    try {
      await listen(second, host, port);
      return { supported: true, reason: null };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      return { supported: false, reason: `a second listener with reusePort on port ${port} failed (${code})` };
    }
  } catch (err) {
    return { supported: false, reason: `a listener with reusePort on ${host} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  } finally {
    await Promise.all([close(first), close(second)]);
  }
}
