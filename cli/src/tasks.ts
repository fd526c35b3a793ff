import { Event, Graph, GraphState } from "@drover/shared";
import { idArgument } from "./arguments.js";
import { type CommandContext, followingNotice, onInterruptNotice } from "./context.js";
import { ExitCode } from "./errors.js";
import { clientCommand } from "./hints.js";
import { eventLine, graphEventLine, graphHeader, progressText, rolledBackLine, summaryLines } from "./render.js";
import { taskTableLines } from "./render/plan.js";
import { planSummaryLines, summarised } from "./render/planSummary.js";
import { watchGraph } from "./stream.js";
import { GraphTracker } from "./tracker.js";

/** How often the progress line's clock is redrawn between events. */
const PROGRESS_TICK_MS = 200;

/** A graph id argument: the whole id, a prefix or the short form (see idArgument); throws a UsageError. */
export const graphIdArgument = (text: string): string => idArgument("graph", text);

/** The request of `tasks watch [graph-id]`: an empty id means the group's latest graph. */
export function watchRequest(graphId: string | undefined, group: string): { graphId: string; group: string } {
  return { graphId: graphId === undefined ? "" : graphIdArgument(graphId), group };
}

/** The exit code of a settled graph: 0 only when it succeeded. */
export function exitCodeForGraph(state: GraphState): ExitCode {
  return state === GraphState.GRAPH_STATE_SUCCEEDED ? ExitCode.ok : ExitCode.failed;
}

export interface TasksWatchArguments {
  full?: boolean;
}

/**
 * `tasks watch [graph-id]`: the graph's tasks as they are (a summary of a large graph's, unless
 * --full), then every event until it settles.
 */
export async function tasksWatch(context: CommandContext, graphId: string | undefined, args: TasksWatchArguments = {}): Promise<ExitCode> {
  const request = watchRequest(graphId, context.globals.group);
  return followGraph(context, { graphId: request.graphId, full: Boolean(args.full) });
}

export interface FollowTarget {
  /** The graph to follow; empty for the group's latest. */
  graphId: string;
  /**
   * A graph just planned and stored, none of whose events has been seen: it is followed from
   * its first event, without a snapshot (what `update` does).
   */
  planned?: Graph;
  /**
   * When the graph fails and its final event names the rollback the failure policy started,
   * follow that graph too, and end with its outcome (what `update` does).
   */
  followRollback?: boolean;
  /** Show every task of a large graph's snapshot, not a summary. */
  full?: boolean;
}

/**
 * Follows a graph to its end, printing the snapshot (unless following a just-planned graph),
 * a line per event and a summary; in json mode one JSON object per line instead. Resumes a
 * broken stream (see watchGraph). With `followRollback`, a failed graph's rollback is
 * followed next, in the same way, and a last line says how the two ended. Returns 0 only if
 * the graph succeeded: a failed update is 1 even when its rollback succeeded.
 */
export async function followGraph(context: CommandContext, target: FollowTarget): Promise<ExitCode> {
  const { out, style, globals } = context;
  const full = Boolean(target.full);
  const graph = await followOneGraph(context, target.graphId, target.planned, { followingNext: Boolean(target.followRollback), full });
  if (!graph) return ExitCode.failed;
  if (!target.followRollback || graph.state !== GraphState.GRAPH_STATE_FAILED || !graph.nextGraphId) return exitCodeForGraph(graph.state);

  if (globals.output !== "json") out.line();
  const rollback = await followOneGraph(context, graph.nextGraphId, undefined, { followingNext: false, full });
  if (!rollback) return ExitCode.failed;
  if (globals.output !== "json") out.line(rolledBackLine(style, rollback, await restoredRevision(context, rollback)));
  // The update failed whatever its rollback did: a script must not read a rolled-back update as a success.
  return ExitCode.failed;
}

/**
 * The revision a rollback graph restored, from the group's history, for the line that ends
 * an update followed into its rollback; undefined if the server cannot say now. The outcome
 * is known by then, so a failure to read the history does not change it.
 */
async function restoredRevision(context: CommandContext, rollback: GraphTracker): Promise<number | undefined> {
  try {
    const connection = context.connection();
    const response = await connection.call((options) => connection.client.listRevisions({ group: rollback.group, limit: 20 }, options));
    return response.revisions.find((each) => each.revision === rollback.revision)?.restores || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows one graph to its end: the snapshot (unless `planned`), the stream, the summary.
 * While it follows, Ctrl-C says that the graph goes on and how to re-attach or cancel it.
 * Returns what the client saw of the graph, or undefined when it saw none of it.
 */
async function followOneGraph(
  context: CommandContext,
  graphId: string,
  planned: Graph | undefined,
  options: { followingNext: boolean; full: boolean },
): Promise<GraphTracker | undefined> {
  const { out, style, globals } = context;
  const json = globals.output === "json";
  const watchStart = Date.now();
  let graph = planned && new GraphTracker(planned, 0);
  let ticker: NodeJS.Timeout | undefined;
  let streaming = false;

  const showProgress = () => {
    // Off a terminal there is no progress line: nothing to work out after each event.
    if (!graph || json || !out.interactive) return;
    const since = graph.startedAt?.getTime() ?? watchStart;
    out.setProgress(progressText(graph.tally(), Date.now() - since, graph.state === GraphState.GRAPH_STATE_PAUSED, graph.waitingCount()));
  };
  const startStream = () => {
    if (json) return;
    streaming = true;
    out.line("TASKS STREAM");
    if (out.interactive) {
      ticker = setInterval(showProgress, PROGRESS_TICK_MS);
      ticker.unref();
      showProgress();
    }
  };
  const stopNotice = onInterruptNotice(() => {
    const id = graph?.id || graphId;
    return id ? followingNotice(id) : `interrupted: nothing was changed; re-attach with '${clientCommand("tasks watch")}'`;
  });

  try {
    if (graph) startStream();
    const items = watchGraph({
      connection: context.connection(),
      graphId,
      group: globals.group,
      afterSequence: graph ? 0 : undefined,
      onBreak: (reason, after) => out.note(`client: the watch stream broke (${reason}); resuming after event ${after}…`),
      onResume: () => out.note("client: the watch stream resumed"),
    });
    for await (const item of items) {
      if (item.type === "snapshot") {
        graph = new GraphTracker(item.graph);
        if (json) {
          out.line(JSON.stringify({ snapshot: Graph.toJSON(item.graph) }));
        } else {
          out.line(graphHeader(style, graph));
          out.line();
          if (summarised(graph.tasks.length, options.full)) {
            for (const line of planSummaryLines(style, graph, { title: "TASKS", states: true })) out.line(line);
          } else {
            out.lines(taskTableLines(style, graph, { shortIds: true, errors: false }));
          }
          out.line();
          if (!graph.settled) startStream();
        }
        continue;
      }
      if (!graph) continue;
      const event = item.event;
      const previous = graph.state;
      // A task that keeps waiting for the same reason is told once.
      const repeatedWait = graph.isRepeatedWait(event);
      if (!graph.apply(event)) continue;
      if (json) {
        out.line(JSON.stringify({ event: Event.toJSON(event) }));
        continue;
      }
      const base = graph.startedAt ?? graph.createdAt;
      const line = repeatedWait ? undefined : (eventLine(style, event, graph, base) ?? graphEventLine(style, event, previous, base));
      if (line !== undefined) out.line(line);
      showProgress();
    }
  } finally {
    stopNotice();
    clearInterval(ticker);
    out.endProgress();
  }
  if (graph && !json) {
    if (streaming) out.line();
    for (const line of summaryLines(style, graph, { followingNext: options.followingNext })) out.line(line);
  }
  return graph;
}
