/**
 * A port nothing listens on, for a server started next (the bench's engines, the tests): the OS
 * picks a free one, which is released again, so nothing listens on it (barring a race with another
 * process binding it in the next moments).
 */
import { createServer } from 'node:net';

export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
