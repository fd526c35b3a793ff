import type { Logger } from "pino";
import type { NodeTemplate } from "../domain.js";
import { DEFAULT_TEMPLATE, withDefaults } from "../templates.js";

/**
 * What differs between what a group's nodes ran and what they will run, one phrase per field
 * ("command /usr/bin/node → /bin/sh"); empty when they run the same. Absent stands for the
 * server's default template. Env values are not shown, only the names set, changed or
 * removed: they often hold secrets, and a log is read by more people than the API is.
 */
export function templateDifferences(before: NodeTemplate | undefined, after: NodeTemplate | undefined): string[] {
  const from = withDefaults(before ?? DEFAULT_TEMPLATE);
  const to = withDefaults(after ?? DEFAULT_TEMPLATE);
  const differences: string[] = [];
  if (from.command !== to.command) differences.push(`command ${from.command} → ${to.command}`);
  if (JSON.stringify(from.args) !== JSON.stringify(to.args)) differences.push(`args ${JSON.stringify(from.args)} → ${JSON.stringify(to.args)}`);
  const names = [...new Set([...Object.keys(from.env), ...Object.keys(to.env)])].sort();
  const set = names.filter((name) => !(name in from.env) && name in to.env);
  const changed = names.filter((name) => name in from.env && name in to.env && from.env[name] !== to.env[name]);
  const removed = names.filter((name) => name in from.env && !(name in to.env));
  if (set.length > 0) differences.push(`env set ${set.join(", ")}`);
  if (changed.length > 0) differences.push(`env changed ${changed.join(", ")}`);
  if (removed.length > 0) differences.push(`env removed ${removed.join(", ")}`);
  if (JSON.stringify(from.healthCheck) !== JSON.stringify(to.healthCheck)) {
    differences.push(`health check ${describeCheck(from.healthCheck)} → ${describeCheck(to.healthCheck)}`);
  }
  if (from.stopGraceMs !== to.stopGraceMs) differences.push(`stop grace ${from.stopGraceMs}ms → ${to.stopGraceMs}ms`);
  if (differences.length === 0) return [];
  if (before === undefined) differences.unshift("was the server's default");
  if (after === undefined) differences.unshift("is now the server's default");
  return differences;
}

/**
 * Logs, at warn, a change of what a group's nodes run. The process driver runs whatever a
 * template names, as the server's user (or `--node-user`), so every change is worth an
 * operator's eye; nothing is logged when the template stays the same.
 */
export function logTemplateChange(
  logger: Logger,
  group: string,
  before: NodeTemplate | undefined,
  after: NodeTemplate | undefined,
  context: { revision?: number; reason?: string },
): void {
  const changes = templateDifferences(before, after);
  if (changes.length === 0) return;
  const where = context.revision === undefined ? "kept for its first update" : `revision ${context.revision}${context.reason ? `, ${context.reason}` : ""}`;
  logger.warn({ group, ...context, changes, command: (after ?? DEFAULT_TEMPLATE).command }, `group ${group}'s node template changed (${where}): ${changes.join("; ")}`);
}

function describeCheck(check: NodeTemplate["healthCheck"]): string {
  const target = check.type === "http" ? `http ${check.path}` : check.type;
  return `${target} every ${check.intervalMs}ms, timeout ${check.timeoutMs}ms, ${check.failureThreshold} failures, start ${check.startTimeoutMs}ms`;
}
