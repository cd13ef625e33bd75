/**
 * Ports for tests that need a server to be absent. Tests never hard-code a port: the OS picks a
 * free one (src/net/unused-port.ts, which the bench uses too).
 */
export { unusedPort } from '../../src/net/unused-port.js';
