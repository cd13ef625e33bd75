/**
 * The engine's listening ports at start: is the port free, and when it is not, one line naming the
 * port, the process that holds it and the fix (README "Start-up"). `stratus run` checks its ports
 * with checkListen before it touches Redis or Kafka, so a taken port never costs the instance that
 * holds it a consumer-group rebalance; listenError turns a failed listen/bind into the same line.
 *
 * The owner is found on Linux only: the inode of the LISTEN socket on the port from /proc/net/tcp
 * and /proc/net/tcp6, then the process holding a `socket:[inode]` link under /proc/<pid>/fd.
 * Elsewhere, or when that process is not ours to look at (another user without root, another PID
 * namespace), the line says "by another process".
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { ErrorCode, StratusError } from '../errors.js';

/** A port the engine listens on, as messages name it. */
export interface ListenTarget {
  /** `gRPC` or `HTTP`. */
  readonly what: string;
  readonly host: string;
  readonly port: number;
  /** The flag that moves it: `--grpc-port`, `--http-port`. */
  readonly flag: string;
}

export interface PortOwner {
  readonly pid: number;
  /** Its command line, arguments joined by spaces, the program by its base name, cut at COMMAND_CHARS_MAX. */
  readonly command: string;
}

/** /proc/net/tcp state of a listening socket (include/net/tcp_states.h TCP_LISTEN = 10). */
const TCP_LISTEN = '0A';
/** A command line longer than this is cut: the line must stay one readable line. */
const COMMAND_CHARS_MAX = 120;

/** Inodes of the LISTEN sockets on `port` (any local address, IPv4 and IPv6); empty off Linux. */
export function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // Not Linux, or IPv6 disabled (no tcp6): nothing listens there that we could name.
      continue;
    }
    // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
      const local = f[1]!;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port) continue;
      if (f[9] !== '0') inodes.add(f[9]!);
    }
  }
  return inodes;
}

/**
 * The process holding a LISTEN socket on `port`, or null when none can be named. Reads every
 * /proc/<pid>/fd, so it is for a failure path only (a few thousand syscalls on a busy machine).
 */
export function portOwner(port: number): PortOwner | null {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  const links = new Set([...inodes].map((i) => `socket:[${i}]`));
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    // No /proc (not Linux): the holder cannot be named; the caller's line says the port is taken.
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      // Gone meanwhile, or another user's process: it cannot be named, the search goes on.
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        // The fd closed between readdir and readlink.
        continue;
      }
      if (links.has(target)) return { pid: Number(pid), command: commandLine(pid) };
    }
  }
  return null;
}

function commandLine(pid: string): string {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    // Gone meanwhile, or not ours to read: the line names its pid without a command.
    return '?';
  }
  if (argv.length === 0) return '?';
  const line = [basename(argv[0]!), ...argv.slice(1)].join(' ');
  return line.length > COMMAND_CHARS_MAX ? `${line.slice(0, COMMAND_CHARS_MAX - 3)}...` : line;
}

/** `127.0.0.1:50051`, `[::1]:50051`. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** What a listening socket's address() reports, as hostPort writes it (a pipe's path as it is). */
export function boundAddress(a: AddressInfo | string | null): string {
  return a === null || typeof a === 'string' ? String(a) : hostPort(a.address, a.port);
}

/** The errno name of a listen failure: Node's err.code, or inside grpc-js's bind message. */
function errnoName(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const m = err instanceof Error ? /\b(E[A-Z]{3,})\b/.exec(err.message) : null;
  return m === null ? null : m[1]!;
}

/** The lowest port an unprivileged process may bind (Linux net.ipv4.ip_unprivileged_port_start; 1024 elsewhere). */
function unprivilegedPortStart(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
    return Number.isInteger(n) ? n : 1024;
  } catch {
    // No such sysctl (not Linux, or an old kernel): the classic limit applies.
    return 1024;
  }
}

/**
 * A failed listen on `target` as one line with the fix: PORT_IN_USE naming the holder, PORT_DENIED
 * for a privileged port, CONFIG_INVALID for an address that is not this machine's or anything else
 * the system refused. `err` is Node's listen error or grpc-js's bindAsync error (whose message
 * carries the errno name).
 */
export function listenError(target: ListenTarget, err: unknown): StratusError {
  const at = hostPort(target.host, target.port);
  const errno = errnoName(err);
  if (errno === 'EADDRINUSE') {
    const owner = portOwner(target.port);
    const by = owner === null ? 'by another process' : `by pid ${owner.pid}: ${owner.command}`;
    return new StratusError(ErrorCode.PORT_IN_USE, `${target.what} port ${at} is in use (${by}); stop that process or set ${target.flag}`, { retryable: true, cause: err });
  }
  if (errno === 'EACCES') {
    const lowest = unprivilegedPortStart();
    return new StratusError(
      ErrorCode.PORT_DENIED,
      `${target.what} port ${at} needs privileges this process lacks (EACCES: ports below ${lowest} are privileged); set ${target.flag} to ${lowest} or above, or give the program CAP_NET_BIND_SERVICE`,
      { cause: err },
    );
  }
  if (errno === 'EADDRNOTAVAIL') {
    return new StratusError(ErrorCode.CONFIG_INVALID, `${target.what} address ${at} is not an address of this machine (EADDRNOTAVAIL); set grpc.host (--grpc-host) to one of its addresses, or 0.0.0.0 for all`, { cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new StratusError(ErrorCode.CONFIG_INVALID, `${target.what} cannot listen on ${at} (${detail}); check grpc.host (--grpc-host) and ${target.flag}`, { cause: err });
}

/**
 * Resolves when `target` could be listened on right now (the probe socket is closed again before
 * this returns); otherwise throws listenError's line. Port 0 (the system picks one) always can.
 * `exclusive`: in a cluster worker the probe must not borrow the primary's shared handle.
 */
export async function checkListen(target: ListenTarget): Promise<void> {
  if (target.port === 0) return;
  const server = createServer();
  const err = await new Promise<Error | null>((resolve) => {
    server.once('error', resolve);
    server.listen({ host: target.host, port: target.port, exclusive: true }, () => resolve(null));
  });
  if (err !== null) throw listenError(target, err);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
