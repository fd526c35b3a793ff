export * from "./gen/drover/v1/drover.js";
export * from "./limits.js";
export * from "./format.js";
export * from "./names.js";
export { BinaryWriter } from "@bufbuild/protobuf/wire";
export * from "./snapshots.js";
