/**
 * "Did you mean": the known names closest to a word a user mistyped (a command, a subcommand, a
 * flag), by Damerau-Levenshtein distance in its optimal-string-alignment form: an insertion, a
 * deletion, a substitution or a swap of two neighbours each count 1, so `lodgen` is 1 from
 * `loadgen` and `--grpc-prot` 1 from `--grpc-port`. Case is ignored (`--Duration` -> `--duration`).
 *
 * The cut-off grows with the word: a third of its length rounded up, at most 3 (1 for up to 3
 * characters, 2 for 4..6, 3 beyond). A suggestion further away than that is more likely noise
 * than help (`frobnicate` suggests nothing).
 */

/** Edits allowed between the typed word and a suggestion. */
export function distanceMax(word: string): number {
  return Math.min(3, Math.max(1, Math.ceil(word.length / 3)));
}

/** Optimal string alignment distance (Damerau-Levenshtein where no substring is edited twice). */
export function editDistance(a: string, b: string): number {
  // Three rows of the (a.length+1) x (b.length+1) table: the one before the previous (for swaps),
  // the previous and the current.
  let older = new Array<number>(b.length + 1).fill(0);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, older[j - 2]! + 1);
      cur[j] = d;
    }
    [older, prev, cur] = [prev, cur, older];
  }
  return prev[b.length]!;
}

/**
 * The known names nearest to `word` within distanceMax(word), nearest first, at most `max`; ties
 * keep the order of `known`. Empty when nothing is close.
 */
export function closest(word: string, known: Iterable<string>, max = 3): string[] {
  const w = word.toLowerCase();
  const limit = distanceMax(w);
  const scored: { name: string; d: number; i: number }[] = [];
  let i = 0;
  for (const name of known) {
    const d = editDistance(w, name.toLowerCase());
    if (d <= limit) scored.push({ name, d, i });
    i++;
  }
  scored.sort((x, y) => x.d - y.d || x.i - y.i);
  // Only the nearest distance: `loadgen` is the answer to `lodgen`, not also everything 2 away.
  const best = scored[0]?.d;
  return scored.filter((s) => s.d === best).slice(0, max).map((s) => s.name);
}

/** `a`, `a or b`, `a, b or c` */
export function orList(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** `; did you mean X?` or `; did you mean X or Y?` for `word`, or '' when nothing is close. */
export function didYouMean(word: string, known: Iterable<string>, show: (name: string) => string = (n) => n): string {
  const near = closest(word, known);
  return near.length === 0 ? '' : `; did you mean ${orList(near.map(show))}?`;
}
