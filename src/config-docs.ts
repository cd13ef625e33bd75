/**
 * docs/configuration.md, generated from the option table in config.ts (`node scripts/config-docs.js`;
 * test/unit/readme.test.ts keeps the file in sync).
 */
import { optionsMarkdown } from './config.js';

export function configDocsMarkdown(): string {
  return [
    '# Configuration',
    '',
    '<!-- generated from src/config.ts by `node scripts/config-docs.js`; do not edit by hand -->',
    '',
    'One validated `Config`, loaded once at start and frozen. Each option is read from, lowest',
    'precedence first: its default, a `.env` file in the working directory (or the file named by',
    '`STRATUS_ENV_FILE`), the `STRATUS_*` environment variable, the command-line flag (every option is',
    'a flag of every command that reads the configuration). A bad value stops the command with the',
    "option's name, the value and what is allowed. An unknown `STRATUS_*` variable is an error too, so",
    'a typo cannot silently fall back to a default. `npx stratus config print` shows the effective',
    'configuration (secrets masked); `npx stratus config options` prints the table below.',
    '',
    optionsMarkdown(),
    '',
  ].join('\n');
}
