// Writes docs/configuration.md from src/config.ts (run after adding or changing an option):
//   npx tsc -b && node scripts/config-docs.js
// test/unit/readme.test.ts fails when the file is not what this writes.
import { writeFileSync } from 'node:fs';
import { configDocsMarkdown } from '../dist/src/config-docs.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), configDocsMarkdown());
