/** A graph as text for other programs to draw: Graphviz's DOT and Mermaid's flowchart. */
import { actionText, taskStateWord } from "../render.js";
import type { GraphTracker } from "../tracker.js";

/** The graph in Graphviz's language: one node per task, labelled with its id and action, and an edge from each prerequisite. */
export function dotGraph(graph: GraphTracker): string {
  const quote = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const lines = [`digraph ${quote(`graph ${graph.id}`)} {`, "  rankdir=TB;", "  node [shape=box, fontname=monospace];"];
  for (const task of graph.tasks) {
    const label = `${task.id}: ${actionText(task, { shortIds: false, graph })}\\n${taskStateWord(task)}`;
    lines.push(`  t${task.id} [label="${label.replace(/"/g, '\\"')}"];`);
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) lines.push(`  t${prerequisite} -> t${task.id};`);
  }
  lines.push("}");
  return lines.join("\n");
}

/** The graph as a Mermaid flowchart, with the same nodes and edges as the dot output. */
export function mermaidGraph(graph: GraphTracker): string {
  const lines = ["flowchart TD"];
  for (const task of graph.tasks) {
    const label = `${task.id}: ${actionText(task, { shortIds: false, graph })}<br/>${taskStateWord(task)}`;
    lines.push(`  t${task.id}["${label.replace(/"/g, "#quot;")}"]`);
  }
  for (const task of graph.tasks) {
    for (const prerequisite of task.prerequisites) lines.push(`  t${prerequisite} --> t${task.id}`);
  }
  return lines.join("\n");
}
