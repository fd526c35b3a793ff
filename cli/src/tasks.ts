import { Event, Graph, GraphState, graphIdProblem } from "@drover/shared";
import type { CommandContext } from "./context.js";
import { ExitCode, UsageError } from "./errors.js";
import { eventLine, graphEventLine, graphHeader, progressText, summaryLines, taskTable } from "./render.js";
import { watchGraph } from "./stream.js";
import { GraphTracker } from "./tracker.js";

/** How often the progress line's clock is redrawn between events. */
const PROGRESS_TICK_MS = 200;

/** A graph id argument, upper-cased (ULIDs are case-insensitive) and checked; throws a UsageError. */
export function graphIdArgument(text: string): string {
  const id = text.toUpperCase();
  const problem = graphIdProblem(id);
  if (problem) throw new UsageError(graphIdProblem(text) ?? problem);
  return id;
}

/** The request of `tasks watch [graph-id]`: an empty id means the group's latest graph. */
export function watchRequest(graphId: string | undefined, group: string): { graphId: string; group: string } {
  return { graphId: graphId === undefined ? "" : graphIdArgument(graphId), group };
}

/** The exit code of a settled graph: 0 only when it succeeded. */
export function exitCodeForGraph(state: GraphState): ExitCode {
  return state === GraphState.GRAPH_STATE_SUCCEEDED ? ExitCode.ok : ExitCode.failed;
}

/** `tasks watch [graph-id]`: the graph's tasks as they are, then every event until it settles. */
export async function tasksWatch(context: CommandContext, graphId: string | undefined): Promise<ExitCode> {
  const request = watchRequest(graphId, context.globals.group);
  return followGraph(context, { graphId: request.graphId });
}

export interface FollowTarget {
  /** The graph to follow; empty for the group's latest. */
  graphId: string;
  /**
   * A graph just planned and stored, none of whose events has been seen: it is followed from
   * its first event, without a snapshot (what `update` does).
   */
  planned?: Graph;
}

/**
 * Follows a graph to its end, printing the snapshot (unless following a just-planned graph),
 * a line per event and a summary; in json mode one JSON object per line instead. Resumes a
 * broken stream (see watchGraph). Returns 0 if the graph succeeded, 1 if it did not.
 */
export async function followGraph(context: CommandContext, target: FollowTarget): Promise<ExitCode> {
  const { out, style, globals } = context;
  const json = globals.output === "json";
  const watchStart = Date.now();
  let graph = target.planned && new GraphTracker(target.planned, 0);
  let ticker: NodeJS.Timeout | undefined;
  let streaming = false;

  const showProgress = () => {
    if (!graph || json) return;
    const since = graph.startedAt?.getTime() ?? watchStart;
    out.setProgress(progressText(graph.tally(), Date.now() - since, graph.state === GraphState.GRAPH_STATE_PAUSED));
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

  try {
    if (graph) startStream();
    const items = watchGraph({
      connection: context.connection(),
      graphId: target.graphId,
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
          out.line(taskTable(style, graph.tasks, { shortIds: true, errors: false }));
          out.line();
          if (!graph.settled) startStream();
        }
        continue;
      }
      if (!graph) continue;
      const event = item.event;
      const previous = graph.state;
      if (!graph.apply(event)) continue;
      if (json) {
        out.line(JSON.stringify({ event: Event.toJSON(event) }));
        continue;
      }
      const base = graph.startedAt ?? graph.createdAt;
      const line = eventLine(style, event, graph, base) ?? graphEventLine(style, event, previous, base);
      if (line !== undefined) out.line(line);
      showProgress();
    }
  } finally {
    clearInterval(ticker);
    out.endProgress();
  }
  if (!graph) return ExitCode.failed;
  if (!json) {
    if (streaming) out.line();
    for (const line of summaryLines(style, graph)) out.line(line);
  }
  return exitCodeForGraph(graph.state);
}
