export * from "./gen/drover/v1/drover.js";
export * from "./limits.js";
export * from "./format.js";
export * from "./names.js";
