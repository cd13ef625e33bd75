/**
 * `stratus run`: the engine's roles in one process. SIGTERM/SIGINT stop it gracefully (streams
 * drained within gateway.drainGraceMs, producer flushed, batches committed); a second signal exits
 * at once.
 */
import { ErrorCode, StratusError } from '../errors.js';
import { ensureTopics } from '../kafka/admin.js';
import { startForwarder } from '../forwarder/forwarder.js';
import { defaultInstanceId, Gateway } from '../gateway/gateway.js';
import { startProcessor } from '../processor/processor.js';
import { topology } from '../topology.js';
import type { Command } from './command.js';

const ROLES = ['gateway', 'processor', 'forwarder'] as const;
type Role = (typeof ROLES)[number];

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the engine: gateway, processor and forwarder roles (all by default).',
  usage: 'run [--roles gateway,processor,forwarder] [--grpc-port N] [--instance-id ID] [config flags]',
  flags: {
    roles: { type: 'string', doc: 'comma-separated roles to run (default: all three)' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const roles = String(flags.roles ?? ROLES.join(',')).split(',').map((r) => r.trim()).filter((r) => r !== '');
    for (const r of roles) {
      if (!(ROLES as readonly string[]).includes(r)) throw new StratusError(ErrorCode.USAGE, `--roles: unknown role "${r}"; use any of ${ROLES.join(', ')}`);
    }
    const has = (r: Role) => roles.includes(r);
    const instanceId = defaultInstanceId(config);
    const t = topology(config);
    await ensureTopics(config, [
      { topic: t.topics.events, partitions: config.kafka.partitions },
      { topic: t.topics.results, partitions: config.kafka.partitions },
    ]);
    const stops: (() => Promise<void>)[] = [];
    if (has('forwarder')) stops.push((await startForwarder(config, instanceId)).stop);
    if (has('processor')) stops.push((await startProcessor(config, instanceId)).stop);
    if (has('gateway')) {
      const gw = await Gateway.start(config, instanceId);
      // The gateway stops first: it stops taking events and flushes what it took.
      stops.unshift(() => gw.stop());
      process.stderr.write(`gateway ${instanceId} listening on 127.0.0.1:${gw.port}\n`);
    }
    process.stderr.write(`stratus run: ${roles.join(', ')} as ${instanceId}\n`);
    return new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (sig: string) => {
        if (stopping) {
          process.stderr.write(`stratus run: second ${sig}, exiting now\n`);
          process.exit(1);
        }
        stopping = true;
        process.stderr.write(`stratus run: ${sig}, stopping (again to force)\n`);
        void (async () => {
          for (const stop of stops) await stop().catch((err: unknown) => process.stderr.write(`stratus run: ${String(err)}\n`));
          resolve(0);
        })();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    });
  },
};
