/**
 * Server reflection (grpc.reflection.v1 and v1alpha) for the gateway's port, so grpcurl, ghz and
 * Postman work without the .proto files.
 *
 * Reads: the served .proto files (proto/, grpc-health-check's health.proto) and the well-known
 * types they import. Writes: nothing; the descriptors are built once, when the gateway starts.
 *
 * @grpc/reflection serves whatever FileDescriptorProtos it is handed. It is not handed
 * proto-loader's: those come from protobufjs's Root#toDescriptor, which a Go client (grpcurl, ghz:
 * google.golang.org/protobuf's protodesc) refuses, for three reasons seen with the real grpcurl:
 *   - a map field's entry message is named after the field (`Metadata`), where protoc and protodesc
 *     require `MetadataEntry` ("invalid map: incorrect implicit map entry name");
 *   - no file lists its imports (`dependency` is left empty), so nimbus.proto's
 *     google.protobuf.Timestamp cannot be resolved;
 *   - fields carry the runtime codecs' camelCase names (`deviceId`), so the JSON a user writes from
 *     the .proto (`device_id`) is refused.
 * So this file builds the descriptors itself, the way protoc would: the .proto's own field names
 * (keepCase) with protoc's json_name beside them, fully qualified type names, `<Field>Entry` map
 * entries, and each file's imports computed from the types it references. The runtime codecs
 * (protocol.ts, proto-loader in seed-service.ts) keep their camelCase objects: the wire format
 * carries numbers, not names.
 *
 * Carried: messages (nested), fields, oneofs (proto3 `optional` as protoc's synthetic oneofs),
 * maps, enums, services, packed=false. Not carried: other options (go_package, deprecated, ...),
 * comments (source_code_info) and extensions; none of them changes what a client encodes or the
 * JSON it accepts. Only proto3 files are served; anything else fails the gateway's start (a
 * programmer error: the unit test builds every served file).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../config.js';

/** A .proto file to describe: the name reflection serves it under (its import path) and where it is. */
export interface ProtoSource {
  readonly name: string;
  readonly path: string;
}

const require = createRequire(import.meta.url);
const PROTO_DIR = join(PROJECT_ROOT, 'proto');
/** protobufjs's copies of google/protobuf/*.proto that it does not bundle as JSON (api, type, ...). */
const PROTOBUFJS_DIR = dirname(require.resolve('protobufjs/package.json'));

/** A file of proto/, served under its path relative to proto/ (as the other files import it). */
export function projectProto(name: string): ProtoSource {
  return { name, path: join(PROTO_DIR, name) };
}

/** grpc-health-check's copy, served under the name the gRPC repository gives it. */
export const HEALTH_PROTO: ProtoSource = { name: 'grpc/health/v1/health.proto', path: healthProtoPath };

/**
 * The well-known types protobufjs bundles as JSON (`protobuf.common`): their types carry no file
 * name, so the file each one is served in is looked up here, by full name.
 */
const BUNDLED_WELL_KNOWN_FILES = ['any', 'duration', 'empty', 'field_mask', 'struct', 'timestamp', 'wrappers'].map((n) => `google/protobuf/${n}.proto`);

// --- descriptor.proto ------------------------------------------------------------------------
// The objects below are google.protobuf.FileDescriptorProto in its .proto field names (keepCase),
// encoded with protobufjs's copy of descriptor.proto.

interface FieldDescriptor {
  name: string;
  number: number;
  label: 'LABEL_OPTIONAL' | 'LABEL_REPEATED';
  type: string;
  type_name?: string;
  json_name: string;
  oneof_index?: number;
  proto3_optional?: boolean;
  options?: { packed: false };
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nested_type: MessageDescriptor[];
  enum_type: EnumDescriptor[];
  oneof_decl: { name: string }[];
  options?: { map_entry: true };
}
interface EnumDescriptor {
  name: string;
  value: { name: string; number: number }[];
}
interface ServiceDescriptor {
  name: string;
  method: { name: string; input_type: string; output_type: string; client_streaming: boolean; server_streaming: boolean }[];
}
export interface FileDescriptor {
  name: string;
  package: string;
  dependency: string[];
  message_type: MessageDescriptor[];
  enum_type: EnumDescriptor[];
  service: ServiceDescriptor[];
  syntax: 'proto3';
}

const descriptorRoot = new protobuf.Root();
descriptorRoot.loadSync(join(PROTOBUFJS_DIR, 'google', 'protobuf', 'descriptor.proto'), { keepCase: true });
const FileDescriptorProto = descriptorRoot.resolveAll().lookupType('google.protobuf.FileDescriptorProto');

/** protoc's scalar type names (descriptor.proto FieldDescriptorProto.Type), by .proto keyword. */
const SCALAR_TYPES: Readonly<Record<string, string>> = {
  double: 'TYPE_DOUBLE', float: 'TYPE_FLOAT', int64: 'TYPE_INT64', uint64: 'TYPE_UINT64', int32: 'TYPE_INT32',
  fixed64: 'TYPE_FIXED64', fixed32: 'TYPE_FIXED32', bool: 'TYPE_BOOL', string: 'TYPE_STRING', bytes: 'TYPE_BYTES',
  uint32: 'TYPE_UINT32', sfixed32: 'TYPE_SFIXED32', sfixed64: 'TYPE_SFIXED64', sint32: 'TYPE_SINT32', sint64: 'TYPE_SINT64',
};

/** protoc's ToJsonName: `device_id` -> `deviceId` (what protojson prints, and accepts beside the name). */
export function jsonName(fieldName: string): string {
  let out = '';
  let upper = false;
  for (const c of fieldName) {
    if (c === '_') upper = true;
    else {
      out += upper ? c.toUpperCase() : c;
      upper = false;
    }
  }
  return out;
}

/** protoc's MapEntryName, which protodesc checks: `metadata` -> `MetadataEntry`, `by_id` -> `ByIdEntry`. */
export function mapEntryName(fieldName: string): string {
  const camel = jsonName(fieldName);
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

// --- building --------------------------------------------------------------------------------

/** Loads the sources with their imports, keeping the .proto's field names. */
function loadRoot(sources: readonly ProtoSource[]): protobuf.Root {
  const root = new protobuf.Root();
  // Imports name files relative to proto/, except google/protobuf/*: protobufjs serves the bundled
  // ones itself (BUNDLED_WELL_KNOWN_FILES, without asking here) and ships the rest as files.
  root.resolvePath = (_origin, target) =>
    isAbsolute(target) ? target : target.startsWith('google/protobuf/') ? join(PROTOBUFJS_DIR, target) : join(PROTO_DIR, target);
  root.loadSync(sources.map((s) => s.path), { keepCase: true });
  root.resolveAll();
  return root;
}

/** The served name of the file that declares `object`. */
function fileNameOf(object: protobuf.ReflectionObject, names: ReadonlyMap<string, string>, bundled: ReadonlyMap<string, string>): string {
  if (object.filename === null) {
    let top = object; // a bundled file's types carry no file name, nested ones neither
    while (top.parent instanceof protobuf.Type) top = top.parent;
    const name = bundled.get(top.fullName);
    assert(name !== undefined, `reflection: ${object.fullName} comes from no file`);
    return name;
  }
  const listed = names.get(object.filename);
  if (listed !== undefined) return listed;
  for (const dir of [PROTO_DIR, PROTOBUFJS_DIR]) {
    const rel = relative(dir, object.filename);
    if (!rel.startsWith('..') && !isAbsolute(rel)) return rel.split(sep).join('/');
  }
  assert.fail(`reflection: ${object.filename} (declaring ${object.fullName}) is neither listed nor under proto/`);
}

/**
 * The FileDescriptorProtos of the sources and of every file they import, by served name, as protoc
 * would write them (see the file comment for what is carried).
 */
export function buildFileDescriptors(sources: readonly ProtoSource[]): Map<string, FileDescriptor> {
  const root = loadRoot(sources);
  const names = new Map(sources.map((s) => [s.path, s.name]));
  const bundled = new Map<string, string>();
  for (const file of BUNDLED_WELL_KNOWN_FILES) {
    const json = protobuf.common.get(file) as { nested: { google: { nested: { protobuf: { nested: Record<string, unknown> } } } } } | null;
    assert(json !== null, `reflection: protobufjs no longer bundles ${file}`);
    for (const type of Object.keys(json.nested.google.nested.protobuf.nested)) bundled.set(`.google.protobuf.${type}`, file);
  }
  const files = new Map<string, FileDescriptor>();
  /** For each file, the files declaring the types it references. */
  const references = new Map<string, Set<string>>();
  const fileOf = (object: protobuf.ReflectionObject) => fileNameOf(object, names, bundled);

  /** A reference to a message or enum, noting the file it needs. */
  const typeName = (from: string, target: protobuf.Type | protobuf.Enum) => {
    references.get(from)!.add(fileOf(target));
    return target.fullName; // fully qualified, with the leading dot, as protoc writes it
  };

  const field = (file: string, f: protobuf.Field, oneofs: protobuf.OneOf[]): FieldDescriptor => {
    assert(!f.required && !f.delimited && !f.extend, `reflection: ${f.fullName}: only proto3 fields are served`);
    const options = f.options as Record<string, unknown> | undefined;
    const out: FieldDescriptor = {
      name: f.name,
      number: f.id,
      label: f.repeated ? 'LABEL_REPEATED' : 'LABEL_OPTIONAL',
      type: SCALAR_TYPES[f.type] ?? (f.resolvedType instanceof protobuf.Enum ? 'TYPE_ENUM' : 'TYPE_MESSAGE'),
      json_name: typeof options?.json_name === 'string' ? options.json_name : jsonName(f.name),
    };
    if (f.resolvedType !== null) out.type_name = typeName(file, f.resolvedType);
    if (f.partOf !== null) out.oneof_index = oneofs.indexOf(f.partOf);
    if (options?.proto3_optional === true) out.proto3_optional = true;
    if (f.repeated && options?.packed === false) out.options = { packed: false };
    return out;
  };

  const message = (file: string, type: protobuf.Type): MessageDescriptor => {
    // protoc puts proto3 `optional`'s synthetic oneofs after the real ones; protodesc checks it.
    const synthetic = (o: protobuf.OneOf) => o.fieldsArray.length === 1 && (o.fieldsArray[0]!.options as Record<string, unknown> | undefined)?.proto3_optional === true;
    const oneofs = [...type.oneofsArray.filter((o) => !synthetic(o)), ...type.oneofsArray.filter(synthetic)];
    const out: MessageDescriptor = { name: type.name, field: [], nested_type: [], enum_type: [], oneof_decl: oneofs.map((o) => ({ name: o.name })) };
    for (const f of type.fieldsArray) {
      if (!(f instanceof protobuf.MapField)) {
        out.field.push(field(file, f, oneofs));
        continue;
      }
      // map<K, V> name = N;  is  repeated NameEntry name = N;  with a nested NameEntry { K key = 1; V value = 2; }
      const entry = mapEntryName(f.name);
      out.field.push({ name: f.name, number: f.id, label: 'LABEL_REPEATED', type: 'TYPE_MESSAGE', type_name: `${type.fullName}.${entry}`, json_name: jsonName(f.name) });
      const key = SCALAR_TYPES[f.keyType];
      assert(key !== undefined, `reflection: ${f.fullName}: map key ${f.keyType} is not a scalar`);
      const value: FieldDescriptor = { name: 'value', number: 2, label: 'LABEL_OPTIONAL', type: SCALAR_TYPES[f.type] ?? (f.resolvedType instanceof protobuf.Enum ? 'TYPE_ENUM' : 'TYPE_MESSAGE'), json_name: 'value' };
      if (f.resolvedType !== null) value.type_name = typeName(file, f.resolvedType);
      out.nested_type.push({
        name: entry,
        field: [{ name: 'key', number: 1, label: 'LABEL_OPTIONAL', type: key, json_name: 'key' }, value],
        nested_type: [],
        enum_type: [],
        oneof_decl: [],
        options: { map_entry: true },
      });
    }
    for (const nested of type.nestedArray) {
      if (nested instanceof protobuf.Type) out.nested_type.push(message(file, nested));
      else if (nested instanceof protobuf.Enum) out.enum_type.push(enumeration(nested));
      else assert.fail(`reflection: ${nested.fullName}: only messages and enums are served inside a message`);
    }
    return out;
  };

  const enumeration = (e: protobuf.Enum): EnumDescriptor => ({ name: e.name, value: Object.entries(e.values).map(([name, number]) => ({ name, number })) });

  const service = (file: string, s: protobuf.Service): ServiceDescriptor => ({
    name: s.name,
    method: s.methodsArray.map((m) => ({
      name: m.name,
      input_type: typeName(file, m.resolvedRequestType!),
      output_type: typeName(file, m.resolvedResponseType!),
      client_streaming: m.requestStream === true,
      server_streaming: m.responseStream === true,
    })),
  });

  const fileFor = (object: protobuf.ReflectionObject, pkg: string): FileDescriptor => {
    const name = fileOf(object);
    let file = files.get(name);
    if (file === undefined) {
      file = { name, package: pkg, dependency: [], message_type: [], enum_type: [], service: [], syntax: 'proto3' };
      files.set(name, file);
      references.set(name, new Set());
    }
    assert.equal(file.package, pkg, `reflection: ${name} declares two packages`);
    const edition = (object as unknown as { _edition?: string })._edition;
    assert(edition === undefined || edition === 'proto3', `reflection: ${name} is ${edition}: only proto3 files are served`);
    return file;
  };

  const walk = (ns: protobuf.NamespaceBase) => {
    const pkg = ns.fullName.replace(/^\./, '');
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) fileFor(nested, pkg).message_type.push(message(fileOf(nested), nested));
      else if (nested instanceof protobuf.Enum) fileFor(nested, pkg).enum_type.push(enumeration(nested));
      else if (nested instanceof protobuf.Service) fileFor(nested, pkg).service.push(service(fileOf(nested), nested));
      else if (nested instanceof protobuf.Namespace) walk(nested);
      else assert.fail(`reflection: ${nested.fullName}: extensions are not served`);
    }
  };
  walk(root);

  for (const [name, file] of files) {
    file.dependency = [...references.get(name)!].filter((d) => d !== name).sort();
  }
  return files;
}

/** Encodes a descriptor as google.protobuf.FileDescriptorProto. */
export function encodeFileDescriptor(file: FileDescriptor): Buffer {
  const message = FileDescriptorProto.fromObject(file);
  const bytes = FileDescriptorProto.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The reflection service describing the sources (and their imports). It lists the sources'
 * services; grpc.reflection itself is served but not listed, as before.
 */
export function reflectionService(sources: readonly ProtoSource[]): ReflectionService {
  const encoded = [...buildFileDescriptors(sources).values()].map(encodeFileDescriptor);
  // @grpc/reflection reads only `fileDescriptorProtos` of each entry of a package definition
  // (reflection-v1.js, its constructor), and dedupes the files by name: one entry carries them all.
  const definition = { files: { fileDescriptorProtos: encoded } } as unknown as PackageDefinition;
  return new ReflectionService(definition);
}
