/**
 * The group's revisions as `history` shows them: the list, one revision whole, and what
 * changed from the revision before.
 */
import { FailurePolicy, formatAge, graphStateName, reasonText, type Revision, type RevisionGraph, revisionReasonText, type Spec } from "@drover/shared";
import {
  commandLineText,
  cpuText,
  durationText,
  healthCheckText,
  memoryText,
  shellWord,
  shortCommandText,
  shortId,
  specText,
  strategyText,
  table,
  templateRows,
} from "../render.js";
import { boundText } from "../boundText.js";
import { clientCommand } from "../hints.js";
import { stateColor, type Style } from "../palette.js";

/** A column of the history: its title, and its cell for a revision. */
interface HistoryColumn {
  title: string;
  cell(revision: Revision, style: Style, now: number): string;
}

const column = (title: string, cell: HistoryColumn["cell"]): HistoryColumn => ({ title, cell });

const REVISION = column("REVISION", (revision) => String(revision.revision));
const COUNT = column("COUNT", (revision) => (revision.spec ? String(revision.spec.count) : "-"));
const VERSION = column("VERSION", (revision) => (revision.spec ? String(revision.spec.version) : "-"));
const SPEC = column("SPEC", (revision) => specText(revision.spec));
const STRATEGY = column("STRATEGY", (revision) => strategyText(revision.spec));
const REASON = column("REASON", (revision) => revisionReasonText(revision));
const AGE = column("AGE", (revision, _style, now) => (revision.createdAt ? formatAge(now - revision.createdAt.getTime()) : "-"));
const GRAPH = column("GRAPH", (revision) => revision.graphId || "-");
/** The rollout graph's short id, and `+2` for the revision's other graphs (its heals, repairs, restarts). */
const SHORT_GRAPH = column("GRAPH", (revision) => {
  const others = otherGraphCount(revision);
  return `${revision.graphId ? shortId(revision.graphId) : "-"}${others > 0 ? ` +${others}` : ""}`;
});
/** The revision's other graphs, newest first, each with why it was made: `heal 01JDX4…K2M7, restart 01JDX4…Q1R7`. */
const OTHER_GRAPHS = column("OTHER GRAPHS", (revision) => {
  const others = revision.graphs.filter((graph) => graph.id !== revision.graphId);
  if (others.length === 0) return "-";
  const unlisted = otherGraphCount(revision) - others.length;
  return `${others.map((graph) => `${revisionGraphReasonText(revision, graph)} ${shortId(graph.id)}`).join(", ")}${unlisted > 0 ? ` and ${unlisted} more` : ""}`;
});
const OUTCOME = column("OUTCOME", (revision, style) => (revision.graphId ? stateColor(style, graphStateName(revision.graphState)) : "nothing to do"));
const TEMPLATE = column("TEMPLATE", (revision) => shortCommandText(revision.spec?.template));

/**
 * What `history` shows by default, to fit an 80-column terminal: the spec as `3 × v2`, the
 * graph's id shortened as the task stream shortens node ids. The widest line of a history
 * whose specs reach `9999 × v99`, with `auto-rollback to 99`, an age of 4 characters and
 * `nothing to do`, is 8 + 3 + 10 + 3 + 19 + 3 + 4 + 3 + 11 + 3 + 13 = 80 characters; a revision
 * with other graphs than its rollout adds ` +N` to its GRAPH (up to 3 more characters for fewer
 * than 10, the common case, which only such a history at its widest would push past 80).
 * Strategy, template and the other graphs themselves are left to --wide and to
 * `history --revision N`, which shows one revision whole.
 */
const NARROW = [REVISION, SPEC, REASON, AGE, SHORT_GRAPH, OUTCOME];
/** Every column, as `history --wide` shows them (and as `history` did before it had to fit); the other graphs last, as they may be many. */
const WIDE = [REVISION, COUNT, VERSION, STRATEGY, REASON, AGE, GRAPH, OUTCOME, TEMPLATE, OTHER_GRAPHS];

/** How many graphs a revision has besides its rollout graph (the one GRAPH and OUTCOME show). */
function otherGraphCount(revision: Revision): number {
  return Math.max(0, revision.graphCount - (revision.graphId ? 1 : 0));
}

/** Why one of a revision's graphs was made, in the words graphs ls prints for it. */
function revisionGraphReasonText(revision: Revision, graph: RevisionGraph): string {
  return reasonText(graph.reason, revision.reason, revision.restores);
}

/**
 * The graphs of one revision, newest first, for `history --revision N`: each whole id, why it
 * was made, how it ended and its age; and how many more the server did not list.
 */
export function revisionGraphLines(style: Style, revision: Revision, now: number): string[] {
  if (revision.graphs.length === 0) return [];
  const rows = revision.graphs.map((graph) => [
    graph.id,
    revisionGraphReasonText(revision, graph),
    stateColor(style, graphStateName(graph.state)),
    graph.createdAt ? formatAge(now - graph.createdAt.getTime()) : "-",
  ]);
  const unlisted = revision.graphCount - revision.graphs.length;
  return [
    `GRAPHS (${revision.graphCount}, newest first)`,
    table(style, ["GRAPH", "REASON", "STATE", "AGE"], rows),
    ...(unlisted > 0 ? [`and ${unlisted} more: list them with '${clientCommand("graphs ls --limit 1000")}'`] : []),
  ];
}

/**
 * The group's revisions, newest first: what each asked for, why it was made, the graph that
 * rolled it out with that graph's outcome (`nothing to do` when the group already matched),
 * and how many other graphs it has; with `wide`, also how it rolls out, the start of its
 * template's command line (`default`: the server's), the graph's whole id, and the other
 * graphs each with why it was made.
 */
export function historyTable(style: Style, revisions: readonly Revision[], now: number, options: { wide: boolean } = { wide: false }): string {
  const columns = options.wide ? WIDE : NARROW;
  return table(
    style,
    columns.map((each) => each.title),
    revisions.map((revision) => columns.map((each) => each.cell(revision, style, now))),
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
  const promote = spec.autoPromoteAfterMs > 0 ? `auto after ${durationText(spec.autoPromoteAfterMs)}` : `with '${clientCommand("graphs promote")}'`;
  const fields: [string, string][] = [
    ["COUNT", String(spec.count)],
    ["VERSION", String(spec.version)],
    ["MAX SURGE", boundText(spec.maxSurge, spec.maxSurgePercent)],
    ["MAX UNAVAILABLE", boundText(spec.maxUnavailable, spec.maxUnavailablePercent)],
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
