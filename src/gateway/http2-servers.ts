/**
 * The http2 servers a grpc-js Server listens with. grpc-js creates them itself, passes none of
 * Node's per-session options through and has no public hook on them, so the connection guard and
 * the authorization header guard reach them through its private `http2Servers` map (read-only).
 * The assert makes a grpc-js upgrade that renames the map fail at start, not silently unguarded.
 * Call it after bindAsync resolved.
 */
import assert from 'node:assert/strict';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

export function grpcHttp2Servers(server: Server, purpose: string): (Http2Server | Http2SecureServer)[] {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server | Http2SecureServer, unknown> }).http2Servers;
  assert.ok(servers instanceof Map && servers.size > 0, `grpc-js Server.http2Servers not found (call after bindAsync; a grpc-js upgrade may have renamed it): ${purpose} cannot be applied`);
  return [...servers.keys()];
}
