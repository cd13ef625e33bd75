/**
 * TLS material from Config (tls.cert, tls.key, tls.ca), read once at start for the gRPC gateway and
 * the HTTP surface, so both serve the same certificate and apply the same client-certificate rule.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
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
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'a directory' : e.message;
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config ${key}: cannot read ${file} (${why}); set ${key} (${flagOf(key)}) to a readable PEM file`, { cause: err });
  }
}

/** `tls.cert` -> `--tls-cert`. */
function flagOf(key: string): string {
  return `--${key.replace('.', '-')}`;
}

/** The first line of an OpenSSL error ("error:0480006C:PEM routines::no start line"), for the one-line message. */
function reason(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

function certificate(key: string, file: string, pem: Buffer): X509Certificate {
  try {
    // X509Certificate also takes DER, which grpc-js does not.
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no -----BEGIN CERTIFICATE----- line');
    return new X509Certificate(pem);
  } catch (err) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config ${key}: ${file} is not a PEM certificate (${reason(err)}); set ${key} (${flagOf(key)}) to a file starting with -----BEGIN CERTIFICATE-----`, { cause: err });
  }
}

function privateKey(file: string, pem: Buffer): KeyObject {
  try {
    if (!pem.includes('PRIVATE KEY-----')) throw new Error('no -----BEGIN ... PRIVATE KEY----- line');
    return createPrivateKey(pem);
  } catch (err) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config tls.key: ${file} is not an unencrypted PEM private key (${reason(err)}); set tls.key (--tls-key) to the certificate's key, e.g. -----BEGIN PRIVATE KEY-----`, { cause: err });
  }
}

/**
 * The files must be what they claim, checked here at start: grpc-js takes any bytes and fails only
 * at the first handshake (every device sees UNAVAILABLE), and node:https throws an OpenSSL stack
 * from deep inside the server's construction.
 */
function checked(files: TlsFiles, config: Config): TlsFiles {
  const cert = certificate('tls.cert', config.tls.cert, files.cert);
  const key = privateKey(config.tls.key, files.key);
  if (!cert.checkPrivateKey(key)) {
    throw new StratusError(ErrorCode.CONFIG_INVALID, `config tls.key: ${config.tls.key} is not the private key of the certificate in tls.cert (${config.tls.cert}); set tls.key (--tls-key) to the key that certificate was issued for`);
  }
  if (files.ca !== null) certificate('tls.ca', config.tls.ca, files.ca);
  return files;
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
  const files = { cert: read('tls.cert', config.tls.cert), key: read('tls.key', config.tls.key), ca: config.tls.ca === '' ? null : read('tls.ca', config.tls.ca) };
  return checked(files, config);
}

export function grpcServerCredentials(tls: TlsFiles | null): ServerCredentials {
  if (tls === null) return ServerCredentials.createInsecure();
  // checkClientCertificate exactly when a CA is given: then a client without a certificate signed
  // by it fails the handshake.
  return ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], tls.ca !== null);
}
