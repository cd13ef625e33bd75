/**
 * Pid files and process control for the local stack.
 *
 * A pid file alone is not proof of ownership: pids are recycled. A process counts as ours only
 * when it is alive and its /proc/<pid>/cmdline carries a marker that only our start could have
 * put there (the data-dir path of its config, or the port for redis-server, which rewrites its
 * process title).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync, openSync, closeSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, StratusError } from '../errors.js';

export function readPid(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    // No pid file: nothing was started (or it was cleaned up).
    return null;
  }
  const pid = Number(text);
  return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
}

export function writePid(file: string, pid: number): void {
  writeFileSync(file, `${pid}\n`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill(0).
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // No such process.
    return false;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    // Gone meanwhile: no command to show.
    return '';
  }
}

export type PidState = { state: 'running'; pid: number } | { state: 'stale'; pid: number } | { state: 'none' };

/** What the pid file says, checked against the live process table. */
export function pidState(file: string, marker: string): PidState {
  const pid = readPid(file);
  if (pid === null) return existsSync(file) ? { state: 'stale', pid: 0 } : { state: 'none' };
  if (isAlive(pid) && cmdline(pid).includes(marker)) return { state: 'running', pid };
  return { state: 'stale', pid };
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
}

/**
 * `signal` (SIGTERM unless a server wants another: PostgreSQL's fast shutdown is SIGINT), wait up
 * to graceMs, then SIGKILL. Resolves once the process is gone.
 */
export async function stopProcess(pid: number, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<'terminated' | 'killed' | 'gone'> {
  if (!isAlive(pid)) return 'gone';
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: it exited between the check and the signal.
    return 'gone';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return 'terminated';
    await sleep(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ESRCH: SIGTERM finished it after all.
    return 'terminated';
  }
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  return 'killed';
}

/** True when something accepts TCP connections on host:port. */
export function portAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Last `lines` lines of a text file, or '' if it can't be read. */
export function tail(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    // No log file yet: nothing to show.
    return '';
  }
}

/**
 * The first line of a server log that reports an error (log4j's ERROR or FATAL, or a Java exception or error),
 * with the line after it (usually the exception's message); '' when there is none. The cause of an
 * exit is often there, far above the stack trace the log ends with.
 */
export function firstError(file: string): string {
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').split('\n');
  } catch {
    return '';
  }
  const i = lines.findIndex((l) => /\b(ERROR|FATAL)\b|\w(Exception|Error)\b/.test(l));
  return i < 0 ? '' : lines.slice(i, i + 2).join('\n').trimEnd();
}

/**
 * An exclusive lock file holding our pid, so that two `stack up` at once (parallel test files,
 * a user in two terminals) do not race to start the same servers. A lock left by a dead process
 * is taken over.
 */
export async function withLock<T>(file: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      closeSync(openSync(file, 'wx'));
      writePid(file, process.pid);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readPid(file);
      if (holder === null || !isAlive(holder)) {
        removeFile(file);
        continue;
      }
      if (Date.now() > deadline) throw new StratusError(ErrorCode.STACK_START_FAILED, `another stratus (pid ${holder}) has held ${file} for over ${timeoutMs} ms; wait for it or remove the file if that process is stuck`, { retryable: true });
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    removeFile(file);
  }
}

export interface RunResult {
  /** null when the program was killed (by the timeout, or a signal from elsewhere). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to its end without blocking the event loop (spawnSync would stall the caller's
 * timers and sockets for the seconds a JVM tool or `redis-cli --cluster create` takes), killing it
 * after timeoutMs. A program that cannot be started at all resolves with code null and the reason
 * in stderr.
 */
export function runToEnd(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number; uid?: number; gid?: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    const ids = options.uid === undefined ? {} : { uid: options.uid, gid: options.gid };
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + String(err) });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
