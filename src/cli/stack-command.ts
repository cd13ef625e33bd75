import type { Command } from './command.js';
export const stackCommand: Command = { name: 'stack', summary: 'Run the local Kafka (KRaft) and Redis: up | down | status | logs.', usage: 'stack up|down|status|logs', flags: {}, usesConfig: true, async run() { return 2; } };
