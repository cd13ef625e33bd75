/**
 * TLS material from Config (tls.cert, tls.key, tls.ca), read once at start for the gRPC gateway and
 * the HTTP surface, so both serve the same certificate and apply the same client-certificate rule.
 */
import { readFileSync } from 'node:fs';
import { ServerCredentials } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';

export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Set: clients must present a certificate this CA signed (mutual TLS). */
  readonly ca: Buffer | null;
}

function read(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config ${key}: cannot read ${file} (${(err as Error).message})`, { cause: err });
  }
}

/** null when TLS is off (tls.cert and tls.key empty). Checked here, at the start of a server, because the three options only make sense together. */
export function tlsFiles(config: Config): TlsFiles | null {
  if ((config.tls.cert === '') !== (config.tls.key === '')) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, 'config tls.cert and tls.key go together: set both (--tls-cert and --tls-key) for TLS, or neither for plaintext');
  }
  if (config.tls.ca !== '' && config.tls.cert === '') {
    throw new StratusError(ErrorCode.CONFIG_INVALID, 'config tls.ca (mutual TLS) needs tls.cert and tls.key: the server must have a certificate of its own');
  }
  if (config.tls.cert === '') return null;
  return { cert: read('tls.cert', config.tls.cert), key: read('tls.key', config.tls.key), ca: config.tls.ca === '' ? null : read('tls.ca', config.tls.ca) };
}

export function grpcServerCredentials(tls: TlsFiles | null): ServerCredentials {
  if (tls === null) return ServerCredentials.createInsecure();
  // checkClientCertificate exactly when a CA is given: then a client without a certificate signed
  // by it fails the handshake.
  return ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], tls.ca !== null);
}
