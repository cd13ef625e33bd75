/**
 * Ports for tests that start a server, or need one to be absent. Tests never hard-code a port:
 * src/net/unused-port.ts (which the bench uses too) draws one below the ephemeral range that no
 * other process of the run holds.
 */
export { unusedPort } from '../../src/net/unused-port.js';
