// Regenerates the configuration table in README.md from src/config.ts (run after adding an option):
//   npm run build && node scripts/readme-config.js
import { readFileSync, writeFileSync } from 'node:fs';
import { optionsMarkdown } from '../dist/src/config.js';

const file = new URL('../README.md', import.meta.url);
const text = readFileSync(file, 'utf8');
const next = text.replace(/(<!-- config-table:start[^>]*-->\n)[\s\S]*?(<!-- config-table:end -->)/, (_, a, b) => `${a}${optionsMarkdown()}\n${b}`);
writeFileSync(file, next);
