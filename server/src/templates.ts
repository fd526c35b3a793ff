import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { quote } from "@drover/shared";
import type { HealthCheck, NodeTemplate } from "./domain.js";

/** The example workload every group runs unless it sets a template of its own. */
export const CHAT_EXAMPLE = fileURLToPath(new URL("../../../examples/chat/chat.mjs", import.meta.url));

export const DEFAULT_HEALTH_CHECK: HealthCheck = {
  type: "http",
  path: "/healthz",
  intervalMs: 1000,
  timeoutMs: 1000,
  failureThreshold: 3,
  startTimeoutMs: 10_000,
};

export const DEFAULT_STOP_GRACE_MS = 5000;

/** The server's default template: the chat example, run by this server's own Node.js. */
export const DEFAULT_TEMPLATE: NodeTemplate = {
  command: process.execPath,
  args: [CHAT_EXAMPLE],
  env: {},
  healthCheck: DEFAULT_HEALTH_CHECK,
  stopGraceMs: DEFAULT_STOP_GRACE_MS,
};

/** A template with every zero or missing field set to its default. */
export function withDefaults(template: NodeTemplate): NodeTemplate {
  const check = template.healthCheck;
  return {
    command: template.command,
    args: template.args,
    env: template.env,
    healthCheck: {
      type: check.type,
      path: check.type === "http" ? check.path || DEFAULT_HEALTH_CHECK.path : "",
      intervalMs: check.intervalMs || DEFAULT_HEALTH_CHECK.intervalMs,
      timeoutMs: check.timeoutMs || DEFAULT_HEALTH_CHECK.timeoutMs,
      failureThreshold: check.failureThreshold || DEFAULT_HEALTH_CHECK.failureThreshold,
      startTimeoutMs: check.startTimeoutMs || DEFAULT_HEALTH_CHECK.startTimeoutMs,
    },
    stopGraceMs: template.stopGraceMs || DEFAULT_STOP_GRACE_MS,
  };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the driver for every node; a template may not override them. */
const RESERVED_ENV = new Set(["PORT", "DROVER_NODE_ID", "DROVER_VERSION", "DROVER_GROUP", "DROVER_PEERS_FILE"]);
const MAX_TEXT = 4096;
const MAX_ARGS = 256;
const MAX_ENV = 128;
const MAX_ENV_NAME = 128;

/** Every rule a template (with defaults filled in) breaks, naming the field. */
export function templateProblems(template: NodeTemplate): string[] {
  const problems: string[] = [];
  if (template.command.trim() === "") problems.push("template command is empty: name the program each node runs");
  // No process can be started with a NUL in its command line or environment.
  const texts = [template.command, ...template.args, ...Object.values(template.env), template.healthCheck.path];
  if (texts.some((text) => text.includes("\0"))) problems.push("template holds a NUL character: commands, args, env values and paths cannot");
  if (template.command.length > MAX_TEXT) problems.push(`template command is ${template.command.length} characters: at most ${MAX_TEXT}`);
  if (template.args.length > MAX_ARGS) problems.push(`template has ${template.args.length} args: at most ${MAX_ARGS}`);
  template.args.forEach((arg, i) => {
    if (arg.length > MAX_TEXT) problems.push(`template arg ${i} is ${arg.length} characters: at most ${MAX_TEXT}`);
  });
  const names = Object.keys(template.env);
  if (names.length > MAX_ENV) problems.push(`template has ${names.length} env variables: at most ${MAX_ENV}`);
  for (const name of names) {
    if (name.length > MAX_ENV_NAME) problems.push(`template env name ${quote(name)} is too long: at most ${MAX_ENV_NAME} characters`);
    else if (!ENV_NAME.test(name)) problems.push(`template env name ${quote(name)} is invalid: use letters, digits and '_', not starting with a digit`);
    else if (RESERVED_ENV.has(name)) problems.push(`template env ${name} is set by the driver for each node: choose another name`);
    if (template.env[name]!.length > MAX_TEXT) problems.push(`template env ${name} is longer than ${MAX_TEXT} characters`);
  }
  const check = template.healthCheck;
  if (check.type === "http" && (!check.path.startsWith("/") || check.path.length > 1024 || /\s/.test(check.path))) {
    problems.push(`health check path ${quote(check.path)} is invalid: a path starting with '/', without spaces`);
  }
  const within = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) problems.push(`health check ${name} ${value} is invalid: it must be from ${min} to ${max}`);
  };
  within("interval_ms", check.intervalMs, 100, 3_600_000);
  within("timeout_ms", check.timeoutMs, 10, 60_000);
  within("failure_threshold", check.failureThreshold, 1, 100);
  within("start_timeout_ms", check.startTimeoutMs, 100, 3_600_000);
  if (!Number.isInteger(template.stopGraceMs) || template.stopGraceMs < 1 || template.stopGraceMs > 600_000) {
    problems.push(`stop_grace_ms ${template.stopGraceMs} is invalid: it must be from 1 to 600000`);
  }
  return problems;
}

/**
 * A short, stable hash of what a template runs (Kubernetes' pod-template-hash): nodes record
 * the hash of the template they were started from, and a node whose hash differs from its
 * spec's is outdated, like one at another version. Keys are sorted, so the order a caller
 * gave env variables in does not matter. 16 hex digits of SHA-256.
 */
export function templateHash(template: NodeTemplate): string {
  const canonical = withDefaults(template);
  const env = Object.fromEntries(Object.entries(canonical.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const text = JSON.stringify([canonical.command, canonical.args, env, canonical.healthCheck, canonical.stopGraceMs]);
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** Whether two templates run the same thing (their defaults filled in). */
export function sameTemplate(a: NodeTemplate | undefined, b: NodeTemplate | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return templateHash(a) === templateHash(b);
}
