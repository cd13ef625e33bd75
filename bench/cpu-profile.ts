/**
 * Reads a V8 CPU profile (`node --cpu-prof`) into the few lines RESULTS.md needs to say where a
 * measured process spent its time: self time by package/module and by function, as shares of the
 * profile's wall time (idle included, so a process waiting on something else shows as idle).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

export interface ProfileSummary {
  wallMs: number;
  /** Share (0..1) of samples in which the thread was idle (waiting on I/O, timers, other threads). */
  idle: number;
  /** Native code V8 cannot attribute (addons, libuv, the HTTP/2 parser), and the garbage collector. */
  program: number;
  gc: number;
  /** Top self time by package (node_modules/<pkg>), node:internal module group, or project file. */
  byModule: { name: string; share: number }[];
  byFunction: { name: string; share: number }[];
}

const SPECIAL: Record<string, 'idle' | 'program' | 'gc'> = { '(idle)': 'idle', '(program)': 'program', '(garbage collector)': 'gc' };

function moduleOf(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1]!;
  const own = /\/dist\/(.+)$/.exec(url);
  if (own !== null) return own[1]!.replace(/\.js$/, '.ts');
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?([^/]+).*$/, 'node:$2');
  return url === '' ? '(native)' : url;
}

export function summarizeProfile(profile: Profile, top = 8): ProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const special = { idle: 0, program: 0, gc: 0 };
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, t] of self) {
    const cf = nodes.get(id)!.callFrame;
    const kind = SPECIAL[cf.functionName];
    if (kind !== undefined) {
      special[kind] += t;
      continue;
    }
    const mod = moduleOf(cf.url);
    byModule.set(mod, (byModule.get(mod) ?? 0) + t);
    const fn = `${cf.functionName === '' ? '(anonymous)' : cf.functionName} (${mod}${cf.url === '' ? '' : `:${cf.lineNumber + 1}`})`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
  }
  const share = (t: number) => (total === 0 ? 0 : Math.round((t / total) * 1000) / 1000);
  const ranked = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, t]) => ({ name, share: share(t) }));
  return { wallMs: Math.round(total / 1000), idle: share(special.idle), program: share(special.program), gc: share(special.gc), byModule: ranked(byModule), byFunction: ranked(byFunction) };
}

/** The main thread's profile among those `node --cpu-prof --cpu-prof-dir=dir` wrote (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, thread 0). */
export function readProfileDir(dir: string): ProfileSummary {
  const files = readdirSync(dir).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f)).sort();
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}: did the process exit normally?`);
  return summarizeProfile(JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as Profile);
}

/** One sentence for a reading: where the time went. */
export function describeProfile(p: ProfileSummary, what: string): string {
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  return `A CPU profile of ${what} (node --cpu-prof, same run, its whole life including start-up) had it idle ${pct(p.idle)} of the time, in native code V8 cannot attribute (HTTP/2 framing, libuv, addons) ${pct(p.program)}, in GC ${pct(p.gc)}; by self time the top modules were ${p.byModule
    .slice(0, 4)
    .map((m) => `${m.name} ${pct(m.share)}`)
    .join(', ')} and the top functions ${p.byFunction
    .slice(0, 3)
    .map((f) => `${f.name} ${pct(f.share)}`)
    .join(', ')}.`;
}
