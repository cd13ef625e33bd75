/**
 * src/gateway/reflection.ts: the descriptors of every file the gateway serves resolve on their own,
 * as a Go client (protodesc) resolves them: every type reference is fully qualified and declared in
 * the file itself or in a file it lists as an import, and every map entry is protoc's. The real
 * grpcurl checks the same end to end (test/integration/gateway/grpcurl.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { after, test } from 'node:test';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../../../src/config.js';
import { buildFileDescriptors, encodeFileDescriptor, HEALTH_PROTO, jsonName, mapEntryName, projectProto, type FileDescriptor } from '../../../src/gateway/reflection.js';
import { writeShapesProto } from '../../helpers/shapes-proto.js';

type Message = FileDescriptor['message_type'][number];

/** Every .proto under proto/: the gateway serves all of them, with health.proto. */
function servedSources() {
  const dir = join(PROJECT_ROOT, 'proto');
  const names = readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.proto'))
    .map((e) => relative(dir, join(e.parentPath, e.name)));
  return [...names.map(projectProto), HEALTH_PROTO];
}

/** Full names (with the leading dot) of the messages and enums each file declares. */
function declared(files: Map<string, FileDescriptor>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [name, f] of files) {
    const names = new Set<string>();
    const walk = (scope: string, messages: readonly Message[], enums: readonly { name: string }[]) => {
      for (const e of enums) names.add(`${scope}.${e.name}`);
      for (const m of messages) {
        names.add(`${scope}.${m.name}`);
        walk(`${scope}.${m.name}`, m.nested_type, m.enum_type);
      }
    };
    walk(f.package === '' ? '' : `.${f.package}`, f.message_type, f.enum_type);
    out.set(name, names);
  }
  return out;
}

/** Checks as protodesc would; returns the problems found. */
function problems(files: Map<string, FileDescriptor>): string[] {
  const found: string[] = [];
  const decl = declared(files);
  for (const [name, f] of files) {
    for (const d of f.dependency) if (!files.has(d)) found.push(`${name}: imports ${d}, which is not served`);
    const visible = new Set([...decl.get(name)!, ...f.dependency.flatMap((d) => [...(decl.get(d) ?? [])])]);
    const ref = (where: string, typeName: string | undefined) => {
      if (typeName === undefined) found.push(`${where}: no type name`);
      else if (!typeName.startsWith('.')) found.push(`${where}: ${typeName} is not fully qualified`);
      else if (!visible.has(typeName)) found.push(`${where}: ${typeName} is neither declared in ${name} nor in its imports`);
    };
    const walk = (scope: string, messages: readonly Message[]) => {
      for (const m of messages) {
        const full = `${scope}.${m.name}`;
        for (const field of m.field) {
          if (field.type === 'TYPE_MESSAGE' || field.type === 'TYPE_ENUM') ref(`${full}.${field.name}`, field.type_name);
          else if (field.type_name !== undefined) found.push(`${full}.${field.name}: a scalar with a type name`);
          if (field.json_name !== jsonName(field.name)) found.push(`${full}.${field.name}: json_name ${field.json_name}`);
          if (field.oneof_index !== undefined && (field.oneof_index < 0 || field.oneof_index >= m.oneof_decl.length)) found.push(`${full}.${field.name}: oneof_index out of range`);
        }
        for (const entry of m.nested_type.filter((n) => n.options?.map_entry === true)) {
          const users = m.field.filter((field) => field.type_name === `${full}.${entry.name}`);
          if (users.length !== 1 || users[0]!.label !== 'LABEL_REPEATED' || mapEntryName(users[0]!.name) !== entry.name) found.push(`${full}.${entry.name}: not the entry of exactly one map field named after it`);
          if (entry.field.map((e) => `${e.name}=${e.number}`).join(',') !== 'key=1,value=2') found.push(`${full}.${entry.name}: fields are not key = 1, value = 2`);
        }
        walk(full, m.nested_type);
      }
    };
    walk(f.package === '' ? '' : `.${f.package}`, f.message_type);
    for (const s of f.service) {
      for (const m of s.method) {
        ref(`${f.package}.${s.name}.${m.name} input`, m.input_type);
        ref(`${f.package}.${s.name}.${m.name} output`, m.output_type);
      }
    }
  }
  return found;
}

/** A file with what proto/ does not use (yet), in a temporary directory. */
const shapesDir = mkdtempSync(join(tmpdir(), 'stratus-reflection-'));
after(() => rmSync(shapesDir, { recursive: true, force: true }));
const shapes = writeShapesProto(shapesDir);
function shapesSource() {
  return shapes;
}

test('every served file resolves: references fully qualified and imported, map entries as protoc names them', () => {
  const files = buildFileDescriptors(servedSources());
  assert.deepEqual(problems(files), []);
  assert.deepEqual([...files.keys()].sort(), [
    'data_nexus/metrics.proto',
    'event/event.proto',
    'google/protobuf/timestamp.proto',
    'grpc/health/v1/health.proto',
    'nimbus/nimbus.proto',
    'stratus/v1/gateway.proto',
    'stratus/v1/kafka.proto',
  ]);
  assert.deepEqual(files.get('nimbus/nimbus.proto')!.dependency, ['google/protobuf/timestamp.proto']);
  for (const f of files.values()) assert.equal(f.syntax, 'proto3');
});

test('fields keep the .proto names, with protoc json_name beside them', () => {
  const files = buildFileDescriptors(servedSources());
  const event = files.get('stratus/v1/gateway.proto')!.message_type.find((m) => m.name === 'Event')!;
  assert.deepEqual(event.field.map((f) => [f.name, f.number, f.json_name, f.type]), [
    ['device_id', 1, 'deviceId', 'TYPE_STRING'],
    ['seq', 2, 'seq', 'TYPE_UINT64'],
    ['type', 3, 'type', 'TYPE_STRING'],
    ['value', 4, 'value', 'TYPE_DOUBLE'],
    ['payload', 5, 'payload', 'TYPE_BYTES'],
    ['sent_at_us', 6, 'sentAtUs', 'TYPE_INT64'],
  ]);
  const step = files.get('nimbus/nimbus.proto')!.message_type.find((m) => m.name === 'TraceStep')!;
  assert.deepEqual(step.field.find((f) => f.name === 'timestamp'), { name: 'timestamp', number: 1, label: 'LABEL_OPTIONAL', type: 'TYPE_MESSAGE', json_name: 'timestamp', type_name: '.google.protobuf.Timestamp' });
  assert.deepEqual(step.field.find((f) => f.name === 'metadata'), { name: 'metadata', number: 6, label: 'LABEL_REPEATED', type: 'TYPE_MESSAGE', type_name: '.nimbus.TraceStep.MetadataEntry', json_name: 'metadata' });
  // data_nexus writes its response fields in camelCase in the .proto; they stay as written.
  const metrics = files.get('data_nexus/metrics.proto')!;
  assert.deepEqual(metrics.message_type.find((m) => m.name === 'BatchIngestResponse')!.field.map((f) => f.name), ['eventIds']);
});

test('protoc names: json_name and map entries', () => {
  assert.equal(jsonName('device_id'), 'deviceId');
  assert.equal(jsonName('sent_at_us'), 'sentAtUs');
  assert.equal(jsonName('eventIds'), 'eventIds');
  assert.equal(mapEntryName('metadata'), 'MetadataEntry');
  assert.equal(mapEntryName('labels_by_id'), 'LabelsByIdEntry');
  assert.equal(mapEntryName('statuses'), 'StatusesEntry');
});

test('the encoded descriptors decode as google.protobuf.FileDescriptorProto with the same content', () => {
  const root = new protobuf.Root();
  root.loadSync(join(dirname(createRequire(import.meta.url).resolve('protobufjs/package.json')), 'google', 'protobuf', 'descriptor.proto'), { keepCase: true });
  const type = root.resolveAll().lookupType('google.protobuf.FileDescriptorProto');
  // fromObject drops a key descriptor.proto does not have: a misspelt one shows up here as missing.
  const withoutEmptyArrays = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(withoutEmptyArrays)
      : typeof value === 'object' && value !== null
        ? Object.fromEntries(Object.entries(value).filter(([, v]) => !(Array.isArray(v) && v.length === 0)).map(([k, v]) => [k, withoutEmptyArrays(v)]))
        : value;
  for (const file of buildFileDescriptors([...servedSources(), ...shapesSource()]).values()) {
    const decoded = type.toObject(type.decode(encodeFileDescriptor(file)), { enums: String });
    assert.deepEqual(decoded, withoutEmptyArrays(file), file.name);
  }
});

test('oneofs, proto3 optional, enums, nested messages and maps of messages and enums', () => {
  const files = buildFileDescriptors(shapesSource());
  assert.deepEqual(problems(files), []);
  const file = files.get('shapes/v1/shapes.proto')!;
  assert.deepEqual(file.dependency, ['google/protobuf/duration.proto']);
  assert.deepEqual(file.enum_type, [{ name: 'Color', value: [{ name: 'COLOR_UNSET', number: 0 }, { name: 'RED', number: 1 }] }]);
  const shape = file.message_type[0]!;
  // protoc: real oneofs first, then the synthetic one of proto3 optional.
  assert.deepEqual(shape.oneof_decl, [{ name: 'form' }, { name: '_size_hint' }]);
  const byName = new Map(shape.field.map((f) => [f.name, f]));
  assert.equal(byName.get('center')!.oneof_index, 0);
  assert.equal(byName.get('label_text')!.oneof_index, 0);
  assert.deepEqual([byName.get('size_hint')!.oneof_index, byName.get('size_hint')!.proto3_optional], [1, true]);
  assert.deepEqual(byName.get('samples')!.options, { packed: false });
  assert.equal(byName.get('kind')!.type_name, '.shapes.v1.Shape.Kind');
  assert.equal(byName.get('kind')!.type, 'TYPE_ENUM');
  assert.deepEqual(shape.nested_type.map((n) => n.name).sort(), ['ColorsEntry', 'Point', 'PointsByNameEntry']);
  const colors = shape.nested_type.find((n) => n.name === 'ColorsEntry')!;
  assert.deepEqual(colors.field.map((f) => [f.name, f.type, f.type_name]), [['key', 'TYPE_INT32', undefined], ['value', 'TYPE_ENUM', '.shapes.v1.Color']]);
  assert.deepEqual(file.service[0]!.method, [{ name: 'Draw', input_type: '.shapes.v1.Shape', output_type: '.shapes.v1.Shape.Point', client_streaming: true, server_streaming: false }]);
});
