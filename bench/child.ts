/**
 * The bench drives everything as separate processes (the engine, baselines, the load generator,
 * the e2e and micro benchmarks), so no measured side shares an event loop with another.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config.js';

export const STRATUS_BIN = join(PROJECT_ROOT, 'bin', 'stratus.js');
export const dist = (...parts: string[]) => join(PROJECT_ROOT, 'dist', ...parts);

/**
 * Runs a command to its end and parses the JSON objects it printed on stdout, one per line or one in
 * all. An exit code other than 0 and those in `okCodes` rejects.
 */
export function runJson<T = unknown>(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; okCodes?: number[] } = {}): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && (code === null || !(opts.okCodes ?? []).includes(code))) return reject(new Error(`${[cmd, ...args].join(' ')} exited with ${code ?? signal}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
      const text = out.trim();
      try {
        resolve(text.startsWith('{') && !text.includes('}\n{') ? [JSON.parse(text) as T] : text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T));
      } catch (e) {
        reject(new Error(`${[cmd, ...args].join(' ')} printed no JSON: ${(e as Error).message}`));
      }
    });
  });
}

export interface Service {
  child: ChildProcess;
  match: RegExpExecArray;
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 15_000;

/** Starts a long-running process and waits for `ready` on its stdout or stderr. */
export function startService(cmd: string, args: string[], ready: RegExp, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Service> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${[cmd, ...args].join(' ')} was not ready in time: ${seen.slice(-500)}`));
    }, opts.timeoutMs ?? 60_000);
    const onData = (b: Buffer) => {
      seen += b.toString();
      const m = ready.exec(seen);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
      child.stdout!.resume();
      child.stderr!.resume();
      resolve({
        child,
        match: m,
        // SIGTERM, and SIGKILL if it has not exited STOP_GRACE_MS later: a baseline whose consumers
        // are still joining their group can take minutes to disconnect on a loaded machine (a
        // clean-clone CI run's quick bench sat in such a stop until the test's timeout).
        stop: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null || child.signalCode !== null) return r();
            const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
            child.once('exit', () => {
              clearTimeout(kill);
              r();
            });
            child.kill('SIGTERM');
          }),
      });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${[cmd, ...args].join(' ')} exited with ${code} before it was ready: ${seen.slice(-500)}`));
    });
  });
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat (Linux). With a
 * reading before and after a measured window it gives the process's CPU cost per event, which
 * holds better than throughput on a shared machine.
 */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which is in parentheses and may hold spaces): utime is the
  // 14th field, stime the 15th, both in clock ticks (USER_HZ, 100 on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}
const CLOCK_TICKS_PER_S = 100;
