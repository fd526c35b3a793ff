/**
 * A graph as text for other programs to draw: Graphviz's DOT and Mermaid's flowchart, each
 * titled with the graph's id and outcome, its tasks filled with the colour of their state
 * (the colours of the client's tables, made pale so that the labels stay readable).
 */
import { actionText, graphHeader, taskStateWord } from "../render.js";
import type { GraphTracker } from "../tracker.js";

/** Fill and border colours by task state word; a state not here (pending) is drawn white. */
const STATE_COLOURS: Record<string, { fill: string; stroke: string }> = {
  succeeded: { fill: "#c8e6c9", stroke: "#2e7d32" },
  failed: { fill: "#ffcdd2", stroke: "#c62828" },
  running: { fill: "#fff59d", stroke: "#f9a825" },
  waiting: { fill: "#ffe0b2", stroke: "#ef6c00" },
  skipped: { fill: "#e0e0e0", stroke: "#757575" },
  cancelled: { fill: "#e0e0e0", stroke: "#757575" },
};

/** The longest error a title quotes; `graphs show` prints it whole. */
const TITLE_ERROR_LENGTH = 120;

/**
 * `graph 01JDX4…: group default, revision 4, 3 × v2, failed: task 0 (…) failed after 3
 * attempts: boom`: which graph, and how it ended (or where it is).
 */
export function graphTitle(graph: GraphTracker): string {
  const header = graphHeader({ color: false }, graph);
  if (!graph.error) return header;
  const error = graph.error.length > TITLE_ERROR_LENGTH ? `${graph.error.slice(0, TITLE_ERROR_LENGTH - 1)}…` : graph.error;
  return `${header}: ${error}`;
}

const dotQuote = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;

/**
 * The graph in Graphviz's language: titled, one node per task, labelled with its id, action
 * and state and filled by state (the tasks of each state in a subgraph that sets the colour),
 * and an edge from each prerequisite.
 */
export function* dotLines(graph: GraphTracker): Generator<string, void> {
  yield `digraph ${dotQuote(`graph ${graph.id}`)} {`;
  yield `  label=${dotQuote(graphTitle(graph))};`;
  yield "  labelloc=t;";
  yield "  rankdir=TB;";
  yield "  node [shape=box, fontname=monospace, style=filled, fillcolor=white];";
  for (const [state, tasks] of tasksByState(graph)) {
    const colour = STATE_COLOURS[state];
    if (colour) {
      yield `  subgraph ${dotQuote(state)} {`;
      yield `    node [fillcolor="${colour.fill}", color="${colour.stroke}"];`;
    }
    const indent = colour ? "    " : "  ";
    for (const task of tasks) {
      const label = `${task.id}: ${actionText(task, { shortIds: false, graph })}\\n${state}`;
      yield `${indent}t${task.id} [label="${label.replace(/"/g, '\\"')}"];`;
    }
    if (colour) yield "  }";
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) yield `  t${prerequisite} -> t${task.id};`;
  }
  yield "}";
}

export function dotGraph(graph: GraphTracker): string {
  return [...dotLines(graph)].join("\n");
}

/**
 * The graph as a Mermaid flowchart with the same nodes and edges as the DOT output: the title
 * in its front matter, a class for each state's colours, each task in the class of its state.
 */
export function* mermaidLines(graph: GraphTracker): Generator<string, void> {
  yield "---";
  yield `title: ${JSON.stringify(graphTitle(graph))}`;
  yield "---";
  yield "flowchart TD";
  for (const [state, colour] of Object.entries(STATE_COLOURS)) yield `  classDef ${state} fill:${colour.fill},stroke:${colour.stroke}`;
  for (const task of graph.tasks) {
    const state = taskStateWord(task);
    const label = `${task.id}: ${actionText(task, { shortIds: false, graph })}<br/>${state}`;
    const style = STATE_COLOURS[state] ? `:::${state}` : "";
    yield `  t${task.id}["${label.replace(/"/g, "#quot;")}"]${style}`;
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) yield `  t${prerequisite} --> t${task.id}`;
  }
}

export function mermaidGraph(graph: GraphTracker): string {
  return [...mermaidLines(graph)].join("\n");
}

/** The graph's tasks by state word, states in the order their first task comes, tasks in id order. */
function tasksByState(graph: GraphTracker): Map<string, GraphTracker["tasks"]> {
  const byState = new Map<string, GraphTracker["tasks"]>();
  for (const task of graph.tasks) {
    const state = taskStateWord(task);
    let tasks = byState.get(state);
    if (!tasks) byState.set(state, (tasks = []));
    tasks.push(task);
  }
  return byState;
}
