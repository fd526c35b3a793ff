import {
  GraphState,
  graphStateToJSON,
  NodeState,
  nodeStateToJSON,
  TaskAction,
  taskActionToJSON,
  TaskState,
  taskStateToJSON,
} from "./gen/drover/v1/drover.js";

/** The lower-case word for an enum value: NODE_STATE_RUNNING → running. */
function shortName(json: string, prefix: string): string {
  return json.startsWith(prefix) ? json.slice(prefix.length).toLowerCase() : json.toLowerCase();
}

export const nodeStateName = (state: NodeState) => shortName(nodeStateToJSON(state), "NODE_STATE_");
export const taskStateName = (state: TaskState) => shortName(taskStateToJSON(state), "TASK_STATE_");
export const graphStateName = (state: GraphState) => shortName(graphStateToJSON(state), "GRAPH_STATE_");
export const taskActionName = (action: TaskAction) => shortName(taskActionToJSON(action), "TASK_ACTION_");

/** Whether a graph in this state will change no more. */
export function isSettled(state: GraphState): boolean {
  return (
    state === GraphState.GRAPH_STATE_SUCCEEDED ||
    state === GraphState.GRAPH_STATE_FAILED ||
    state === GraphState.GRAPH_STATE_CANCELLED ||
    state === GraphState.GRAPH_STATE_SUPERSEDED
  );
}
