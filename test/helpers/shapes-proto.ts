/**
 * A .proto with what proto/ does not use (yet): oneofs, proto3 optional, nested and top-level enums,
 * maps of messages and of enums, an unpacked repeated field, a well-known import, a streaming
 * service. The reflection tests build descriptors from it (unit) and hand them to grpcurl (integration).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SHAPES_PROTO = `syntax = "proto3";
package shapes.v1;
import "google/protobuf/duration.proto";
enum Color { COLOR_UNSET = 0; RED = 1; }
message Shape {
  message Point { sint32 x_pos = 1; sint32 y_pos = 2; }
  enum Kind { KIND_UNSET = 0; CIRCLE = 1; }
  oneof form { Point center = 1; string label_text = 2; }
  optional uint32 size_hint = 3;
  map<string, Point> points_by_name = 4;
  map<int32, Color> colors = 5;
  repeated int32 samples = 6 [packed = false];
  Kind kind = 7;
  google.protobuf.Duration ttl = 8;
}
service Shapes { rpc Draw(stream Shape) returns (Shape.Point); }
`;

/** Writes shapes.proto into dir; returns it as a source for buildFileDescriptors. */
export function writeShapesProto(dir: string): { name: string; path: string }[] {
  const path = join(dir, 'shapes.proto');
  writeFileSync(path, SHAPES_PROTO);
  return [{ name: 'shapes/v1/shapes.proto', path }];
}
