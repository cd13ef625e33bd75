#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/ (`npm run setup` or `npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('stratus: not built yet; run `npm run setup` (or `npm run build`) in the project folder\n');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
