/**
 * A port nothing listens on, for a server started next (the bench's engines, the tests).
 *
 * Not the one the OS picks for port 0: that comes from the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), where any outgoing connection
 * (a Kafka client's, a test's) may take it before the server binds it, and where the port just
 * released comes back again (seen in CI: two engines of one test handed the same HTTP port).
 * Instead: a random port below that range, never handed out twice by one process, reserved against
 * the other processes doing the same (the test runner's files run in parallel) by a file in
 * <tmpdir>/stratus-ports named after the port and holding the owner's pid (removed 10 minutes after
 * its owner has exited), and checked free by binding it on every address.
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { KAFKA_NODES, REDIS_BUS_PORT_OFFSET, REDIS_CLUSTER_PORTS } from '../stack/cluster-layout.js';
import { isAlive } from '../stack/processes.js';
import { join } from 'node:path';

const LOWEST = 10_000;
const TRIES = 200;
const SWEEP_AGE_MS = 10 * 60_000;
const handedOut = new Set<number>();
/**
 * The fixed ports of the stack's services: never handed out, even while a node is down (a fault
 * test between its kill and its restart would find the port free).
 */
const FIXED = new Set<number>([
  6379, 9092, 9093,
  ...KAFKA_NODES.flatMap((n) => [n.port, n.controllerPort]),
  ...REDIS_CLUSTER_PORTS.flatMap((p) => [p, p + REDIS_BUS_PORT_OFFSET]),
]);
const reservations = join(tmpdir(), 'stratus-ports');

/** [lowest, highest] to draw from: below the ephemeral range, or above it when that starts too low. */
function drawRange(): [number, number] {
  let start = 32_768;
  let end = 60_999;
  try {
    [start, end] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  } catch {
    // Not Linux: keep the defaults.
  }
  if (start - LOWEST >= 5_000) return [LOWEST, start - 1];
  if (65_535 - end >= 2_000) return [end + 1, 65_535];
  return [LOWEST, 65_535];
}

/**
 * Once per process: removes the reservations of processes that have exited at least SWEEP_AGE_MS
 * ago (by the file's age, so a file just written, whoever reads it, is never taken for stale).
 */
let swept = false;
function sweep(): void {
  if (swept) return;
  swept = true;
  mkdirSync(reservations, { recursive: true });
  const now = Date.now();
  for (const name of readdirSync(reservations)) {
    if (!/^\d+$/.test(name)) continue;
    const file = join(reservations, name);
    try {
      if (now - statSync(file).mtimeMs < SWEEP_AGE_MS) continue;
      const owner = Number(readFileSync(file, 'utf8'));
      // pid 0 would name our own process group: a garbled file is stale.
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
      unlinkSync(file);
    } catch {
      // Removed by another process meanwhile.
    }
  }
}

/**
 * Reserves `port` for this process against the others: false when any file names it, the owner
 * alive or not (a stale one is only removed by sweep()). The file appears whole, pid included:
 * written aside, then linked in, which fails when the name exists.
 */
function reserve(port: number): boolean {
  const file = join(reservations, String(port));
  const draft = join(reservations, `draft.${process.pid}`);
  writeFileSync(draft, String(process.pid));
  try {
    linkSync(draft, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    unlinkSync(draft);
  }
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    // No host: the unspecified address, which conflicts with a listener on any address.
    server.listen({ port, exclusive: true }, () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

export async function unusedPort(): Promise<number> {
  sweep();
  const [lowest, highest] = drawRange();
  for (let i = 0; i < TRIES; i++) {
    const port = lowest + Math.floor(Math.random() * (highest - lowest + 1));
    if (handedOut.has(port) || FIXED.has(port)) continue;
    if (!reserve(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port found in ${TRIES} tries between ${lowest} and ${highest}`);
}
