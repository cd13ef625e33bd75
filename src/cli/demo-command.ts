import type { Command } from './command.js';
export const demoCommand: Command = { name: 'demo', summary: 'Start the local stack and show what Stratus does, end to end.', usage: 'demo', flags: {}, usesConfig: true, async run() { return 2; } };
