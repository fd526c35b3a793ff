/**
 * The group's revisions as `history` shows them: the list, one revision whole, and what
 * changed from the revision before.
 */
import { FailurePolicy, formatAge, graphStateName, type Revision, type Spec } from "@drover/shared";
import {
  commandLineText,
  cpuText,
  durationText,
  healthCheckText,
  memoryText,
  revisionReasonText,
  shellWord,
  shortCommandText,
  stateColor,
  strategyText,
  type Style,
  table,
  templateRows,
} from "../render.js";

/**
 * The group's revisions, newest first: what each asked for, why it was made, the graph it
 * made with that graph's outcome (`nothing to do` when the group already matched), and the
 * start of its template's command line (`default`: the server's).
 */
export function historyTable(style: Style, revisions: readonly Revision[], now: number): string {
  return table(
    style,
    ["REVISION", "COUNT", "VERSION", "STRATEGY", "REASON", "AGE", "GRAPH", "OUTCOME", "TEMPLATE"],
    revisions.map((revision) => [
      String(revision.revision),
      revision.spec ? String(revision.spec.count) : "-",
      revision.spec ? String(revision.spec.version) : "-",
      strategyText(revision.spec),
      revisionReasonText(revision),
      revision.createdAt ? formatAge(now - revision.createdAt.getTime()) : "-",
      revision.graphId || "-",
      revision.graphId ? stateColor(style, graphStateName(revision.graphState)) : "nothing to do",
      shortCommandText(revision.spec?.template),
    ]),
  );
}

/**
 * One revision whole, a field a row, for `history --revision N`: when and why it was made, the
 * graph it made, its spec field by field, and its template.
 */
export function revisionRows(revision: Revision, now: number): string[][] {
  const created = revision.createdAt;
  const spec = revision.spec;
  const fields = specFields(spec);
  return [
    ["REVISION", String(revision.revision)],
    ["REASON", revisionReasonText(revision)],
    ["CREATED", created ? `${formatAge(now - created.getTime())} ago (${created.toISOString()})` : "-"],
    ["GRAPH", revision.graphId ? `${revision.graphId} ${graphStateName(revision.graphState)}` : "none (nothing to do)"],
    ...fields.filter(([name]) => !isTemplateField(name)),
    ...(spec?.template ? [["TEMPLATE", spec.templateHash ? `its own, hash ${spec.templateHash}` : "its own"], ...templateRows(spec.template)] : [["TEMPLATE", "the server's default"]]),
  ];
}

/**
 * What changed from one revision's spec to the next's, a field a row: `VERSION  1 → 2`,
 * `ENV MODE  (unset) → prod`. Empty when nothing did.
 */
export function revisionChanges(before: Spec | undefined, after: Spec | undefined): string[][] {
  const old = new Map(specFields(before));
  const current = new Map(specFields(after));
  const names = [...current.keys(), ...[...old.keys()].filter((name) => !current.has(name))];
  return names
    .filter((name) => old.get(name) !== current.get(name))
    .map((name) => [name, `${old.get(name) ?? "(unset)"} → ${current.get(name) ?? "(unset)"}`]);
}

const isTemplateField = (name: string) =>
  name === "TEMPLATE" || name === "COMMAND" || name.startsWith("ENV ") || name === "HEALTH CHECK" || name === "STOP GRACE";

/** A spec's fields by name, each variable of its template's environment a field of its own (`ENV MODE`). */
function specFields(spec: Spec | undefined): [string, string][] {
  if (!spec) return [];
  const serverDefault = (milliseconds: number) => (milliseconds > 0 ? durationText(milliseconds) : "the server's default");
  const promote = spec.autoPromoteAfterMs > 0 ? `auto after ${durationText(spec.autoPromoteAfterMs)}` : "with 'client graphs promote'";
  const fields: [string, string][] = [
    ["COUNT", String(spec.count)],
    ["VERSION", String(spec.version)],
    ["MAX SURGE", String(spec.maxSurge)],
    ["MAX UNAVAILABLE", String(spec.maxUnavailable)],
    ["MIN READY", spec.minReadyMs > 0 ? durationText(spec.minReadyMs) : "0 (available once healthy)"],
    ["CANARY", spec.canary > 0 ? `${spec.canary}, then promote ${promote}` : "none"],
    ["ON FAILURE", spec.onFailure === FailurePolicy.FAILURE_POLICY_ROLLBACK ? "rollback" : "stop"],
    ["TASK TIMEOUT", serverDefault(spec.taskTimeoutMs)],
    ["PROGRESS DEADLINE", serverDefault(spec.progressDeadlineMs)],
    ["CPU", spec.cpuMillis > 0 ? cpuText(spec.cpuMillis) : "none reserved"],
    ["MEMORY", spec.memoryMb > 0 ? memoryText(spec.memoryMb) : "none reserved"],
  ];
  const template = spec.template;
  if (!template) return [...fields, ["TEMPLATE", "the server's default"]];
  const env = Object.entries(template.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [
    ...fields,
    ["TEMPLATE", spec.templateHash ? `hash ${spec.templateHash}` : "its own"],
    ["COMMAND", commandLineText(template)],
    ...env.map(([name, value]): [string, string] => [`ENV ${name}`, shellWord(value)]),
    ["HEALTH CHECK", healthCheckText(template.healthCheck)],
    ["STOP GRACE", `${durationText(template.stopGraceMs)}, then SIGKILL`],
  ];
}
