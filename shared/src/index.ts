export * from "./gen/drover/v1/drover.js";
// Also wraps the generated toJSON of a few messages (see the file): JSON that round-trips.
export * from "./alwaysInJson.js";
export * from "./limits.js";
export * from "./idReferences.js";
export * from "./reasons.js";
export * from "./rolloutBounds.js";
export * from "./format.js";
export * from "./duration.js";
export * from "./names.js";
export { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
export * from "./snapshots.js";
export * from "./booleanEnvironment.js";
