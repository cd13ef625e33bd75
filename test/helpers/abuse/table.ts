/**
 * The abuse suite's table: one row per attack, printed and written as markdown (with the raw rows
 * as JSON below it) to .stratus/faults/abuse.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AbuseRow {
  attack: string;
  /** What the attacker saw refused or cut (attack.ts refusalOf). */
  refusal: string;
  peakRssMiB: number;
  canaryP99BeforeMs: number;
  canaryP99DuringMs: number;
  /**
   * The canary's p99 over the attacker's leaving (it drops every connection it held at once, a
   * second after the measured window): recorded, not a target (see abuse.test.ts).
   */
  canaryP99ReleaseMs: number;
  /** Events the canary sent during the attack and had no ack for when the window was evaluated. */
  canaryUnacked: number;
  canarySent: number;
  probesOk: number;
  probesTotal: number;
  /** null: the engine was running at the end; else its exit status. */
  engineExit: string | null;
  /** The targets this row misses, in words; [] when it meets them all. */
  failed: string[];
  /** Everything the attacker counted, for the JSON. */
  detail: unknown;
}

export function abuseTable(title: string, rows: AbuseRow[]): string {
  const head = ['attack', 'refusal the attacker saw', 'peak RSS MiB', 'canary p99 before ms', 'canary p99 during ms', 'canary unacked', '/readyz ok/total', 'canary p99 as the attacker leaves ms', 'targets missed'];
  const lines = rows.map((r) => [
    r.attack,
    r.refusal.replace(/\|/g, '/'),
    r.peakRssMiB.toFixed(0),
    r.canaryP99BeforeMs.toFixed(0),
    r.canaryP99DuringMs.toFixed(0),
    `${r.canaryUnacked}/${r.canarySent}`,
    `${r.probesOk}/${r.probesTotal}`,
    r.canaryP99ReleaseMs.toFixed(0),
    [...(r.engineExit === null ? [] : [`engine exited (${r.engineExit})`]), ...r.failed].join('; ') || '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7]);
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [title, '', fmt(head), `|${widths.map((w, i) => (numeric.has(i) ? `-${'-'.repeat(w)}:` : `-${'-'.repeat(w)}-`)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** Writes the table and the raw rows to `file` (markdown); returns the table text. */
export function writeAbuseTable(title: string, rows: AbuseRow[], file: string, notes: string[] = []): string {
  const text = abuseTable(title, rows);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${text}\n\n${notes.map((n) => `${n}\n`).join('')}\n<details><summary>raw rows (${new Date().toISOString()})</summary>\n\n\`\`\`json\n${JSON.stringify(rows, null, 2)}\n\`\`\`\n</details>\n`);
  return text;
}
