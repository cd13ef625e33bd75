/**
 * `stratus token issue --device ID [--ttl 1h]`: prints a device token signed with auth.tokenSecret
 * (set it in the environment as STRATUS_AUTH_TOKEN_SECRET, not as a flag: flags show in `ps`).
 * The token goes on stdout alone, so `TOKEN=$(npx stratus token issue --device d1)` works.
 */
import { issueToken } from '../auth/token.js';
import { ErrorCode, StratusError } from '../errors.js';
import { parseDurationFlagS } from './duration.js';
import type { Command } from './command.js';

const TTL_S_MAX = 366 * 24 * 3600;

export const tokenCommand: Command = {
  name: 'token',
  summary: 'Issue a device token (HMAC-SHA256 over device id and expiry) for auth.tokenSecret.',
  usage: 'token issue --device ID [--ttl 1h]',
  flags: {
    device: { type: 'string', doc: 'the device id the token lets its holder act as (1..256 bytes)' },
    ttl: { type: 'string', doc: 'how long the token is valid: 30s, 15m, 1h, 720h (default 1h, at most 366 days)' },
  },
  usesConfig: true,
  words: { subcommands: { issue: 0 } },
  async run({ positionals, flags, config }) {
    if (positionals[0] !== 'issue' || positionals.length !== 1) throw new StratusError(ErrorCode.USAGE, 'usage: stratus token issue --device ID [--ttl 1h]');
    const device = typeof flags.device === 'string' ? flags.device : '';
    const bytes = Buffer.byteLength(device, 'utf8');
    if (bytes === 0 || bytes > 256) throw new StratusError(ErrorCode.USAGE, `--device must name the device (1..256 bytes, got ${bytes})`);
    const ttlS = parseDurationFlagS('--ttl', typeof flags.ttl === 'string' ? flags.ttl : '1h', false);
    if (ttlS > TTL_S_MAX) throw new StratusError(ErrorCode.USAGE, `--ttl is at most 366 days (got ${flags.ttl})`);
    if (config.auth.tokenSecret === '') {
      throw new StratusError(ErrorCode.USAGE, 'config auth.tokenSecret is not set: export STRATUS_AUTH_TOKEN_SECRET (the same value the engine runs with; e.g. `openssl rand -hex 32`)');
    }
    const expiresAtS = Math.ceil(Date.now() / 1000 + ttlS);
    process.stdout.write(issueToken(config.auth.tokenSecret, device, expiresAtS) + '\n');
    process.stderr.write(`token for device ${JSON.stringify(device)}, valid until ${new Date(expiresAtS * 1000).toISOString()}\n`);
    return 0;
  },
};
