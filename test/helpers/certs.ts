/** Certificates for TLS tests: the bench makes the same ones (bench/tls-certs.ts). */
export { makeCerts, type TestCerts } from '../../bench/tls-certs.js';
