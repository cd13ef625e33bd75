/**
 * TLS and mutual TLS on the gRPC gateway and the HTTP surface (tls.cert, tls.key, tls.ca), with
 * certificates made by openssl for this run. One pipeline; its gateway serves mutual TLS, and a
 * second gateway on the same topics serves TLS without client certificates.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { after, before, test } from 'node:test';
import { credentials, status, type ChannelCredentials } from '@grpc/grpc-js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { HttpSurface } from '../../../src/http/server.js';
import { makeCerts, type TestCerts } from '../../helpers/certs.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

let certs: TestCerts;
let pipeline: TestPipeline;
let mtls: Gateway;
let tlsOnly: Gateway;
let mtlsHttp: HttpSurface;
let tlsHttp: HttpSurface;

before(async () => {
  certs = makeCerts();
  const base = testConfig({ 'kafka-partitions': '2' });
  const same = { 'kafka-topic-prefix': base.kafka.topicPrefix, 'redis-key-prefix': base.redis.keyPrefix, 'kafka-partitions': '2', 'tls-cert': certs.serverCert, 'tls-key': certs.serverKey };
  const mtlsConfig = testConfig({ ...same, 'tls-ca': certs.caCert });
  const tlsConfig = testConfig(same);
  pipeline = await startPipeline(mtlsConfig, ['gw-mtls']);
  mtls = pipeline.gateways[0]!;
  tlsOnly = await Gateway.start(tlsConfig, 'gw-tls', 0);
  mtlsHttp = await HttpSurface.start(mtlsConfig, { check: async () => null }, { port: 0 });
  tlsHttp = await HttpSurface.start(tlsConfig, { check: async () => null }, { port: 0 });
});
after(async () => {
  await tlsOnly?.stop();
  await pipeline?.stop();
  await mtlsHttp?.close();
  await tlsHttp?.close();
  certs?.remove();
});

/** Sends 3 events and waits for their acks and results; returns the stream's status if it failed instead. */
async function roundTrip(address: string, deviceId: string, creds: ChannelCredentials): Promise<{ ok: true } | { ok: false; code: number | undefined; details: string }> {
  const d = new TestDevice(deviceId).connect(address, { creds });
  d.send([1, 2, 3].map((seq) => ({ seq, type: 'sq', value: seq })));
  try {
    await d.until(() => d.ended || (d.ackedSeq === 3 && d.results.length === 3), 30_000, 'round trip or failure');
    if (d.ended && d.status !== null) return { ok: false, code: d.status.code, details: d.status.details };
    assert.deepEqual(d.results.map((r) => [r.seq, r.value]), [[1, 1], [2, 4], [3, 9]]);
    return { ok: true };
  } finally {
    d.close();
  }
}

function get(url: string, tls: RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? (u: string, cb: Parameters<typeof httpsRequest>[2]) => httpsRequest(u, { ...tls, timeout: 5000 }, cb) : (u: string, cb: Parameters<typeof httpRequest>[2]) => httpRequest(u, { timeout: 5000 }, cb);
    const req = send(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('TLS: a device that trusts the CA gets acks and results; a plaintext client gets UNAVAILABLE', { timeout: 60_000 }, async () => {
  const addr = `127.0.0.1:${tlsOnly.port}`;
  assert.deepEqual(await roundTrip(addr, 'tls-dev-1', credentials.createSsl(certs.read(certs.caCert))), { ok: true });
  const plain = await roundTrip(addr, 'tls-dev-2', credentials.createInsecure());
  assert.equal(plain.ok, false);
  assert.equal((plain as { code: number }).code, status.UNAVAILABLE);
  // A client that does not trust the server's CA refuses it.
  const untrusting = await roundTrip(addr, 'tls-dev-3', credentials.createSsl(certs.read(certs.strangerCert)));
  assert.equal((untrusting as { code: number }).code, status.UNAVAILABLE);
});

test('mutual TLS: only a client certificate signed by tls.ca gets through', { timeout: 60_000 }, async () => {
  const addr = `127.0.0.1:${mtls.port}`;
  const ca = certs.read(certs.caCert);
  assert.deepEqual(await roundTrip(addr, 'mtls-dev-1', credentials.createSsl(ca, certs.read(certs.clientKey), certs.read(certs.clientCert))), { ok: true });
  const noCert = await roundTrip(addr, 'mtls-dev-2', credentials.createSsl(ca));
  assert.equal((noCert as { code: number }).code, status.UNAVAILABLE, JSON.stringify(noCert));
  const stranger = await roundTrip(addr, 'mtls-dev-3', credentials.createSsl(ca, certs.read(certs.strangerKey), certs.read(certs.strangerCert)));
  assert.equal((stranger as { code: number }).code, status.UNAVAILABLE, JSON.stringify(stranger));
});

test('the HTTP surface serves HTTPS only, and with tls.ca asks for the client certificate', { timeout: 30_000 }, async () => {
  const ca = certs.read(certs.caCert);
  assert.deepEqual(await get(`https://127.0.0.1:${tlsHttp.port}/livez`, { ca }), { status: 200, body: 'ok\n' });
  // Plain HTTP to a TLS port: no HTTP answer.
  await assert.rejects(get(`http://127.0.0.1:${tlsHttp.port}/livez`));
  // An HTTPS client that does not trust the CA refuses the server.
  await assert.rejects(get(`https://127.0.0.1:${tlsHttp.port}/livez`, { ca: certs.read(certs.strangerCert) }), /self-signed|unable to verify|certificate/);

  assert.deepEqual(await get(`https://127.0.0.1:${mtlsHttp.port}/livez`, { ca, cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) }), { status: 200, body: 'ok\n' });
  await assert.rejects(get(`https://127.0.0.1:${mtlsHttp.port}/livez`, { ca }));
  await assert.rejects(get(`https://127.0.0.1:${mtlsHttp.port}/livez`, { ca, cert: certs.read(certs.strangerCert), key: certs.read(certs.strangerKey) }));
});
