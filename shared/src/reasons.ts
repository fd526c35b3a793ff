/**
 * Why a graph or a revision exists, in the words every view prints: `graphs ls` for a graph,
 * `history` for a revision and each of its graphs. One function says them all, so that a
 * rollback's graph says `rollback to 3` wherever it is listed.
 */

import { GraphReason, RevisionReason } from "./gen/drover/v1/drover.js";

/**
 * The words for a graph made for `graphReason` under a revision made for `revisionReason`:
 * - a graph a revision made says why the revision was made: `update`, `scale` (only the count
 *   changed), `rollback to 3`, `auto-rollback to 3` (the failure policy's), `stop` and `clone`
 *   (`nodes stop` and `nodes clone`, each a revision with the count one lower or higher),
 *   `delete` (`group delete`: the revision that scales the group to 0 before it is forgotten);
 * - a graph made under the revision afterwards says what made it: `repair` (drift, after the
 *   rollout succeeded), `heal` (failed nodes replaced at their own revision while the rollout
 *   does not move on), `restart` (`nodes restart`).
 * A revision's own words are those of the graph it made (GRAPH_REASON_UPDATE).
 */
export function reasonText(graphReason: GraphReason, revisionReason: RevisionReason, restores: number): string {
  switch (graphReason) {
    case GraphReason.GRAPH_REASON_REPAIR:
      return "repair";
    case GraphReason.GRAPH_REASON_HEAL:
      return "heal";
    case GraphReason.GRAPH_REASON_OPERATION:
      return "restart";
  }
  switch (revisionReason) {
    case RevisionReason.REVISION_REASON_SCALE:
      return "scale";
    case RevisionReason.REVISION_REASON_ROLLBACK:
      return `rollback to ${restores}`;
    case RevisionReason.REVISION_REASON_AUTO_ROLLBACK:
      return `auto-rollback to ${restores}`;
    case RevisionReason.REVISION_REASON_STOP:
      return "stop";
    case RevisionReason.REVISION_REASON_CLONE:
      return "clone";
    case RevisionReason.REVISION_REASON_DELETE:
      return "delete";
    default:
      // A user's update, or a server too old to say.
      return "update";
  }
}

/** Why a revision exists: `update`, `scale`, `rollback to 1`, `auto-rollback to 1`, `stop`, `clone`, `delete`. */
export function revisionReasonText(revision: { reason: RevisionReason; restores: number }): string {
  return reasonText(GraphReason.GRAPH_REASON_UPDATE, revision.reason, revision.restores);
}

/** Why a graph exists: its revision's words for the graph the revision made, else `repair`, `heal` or `restart`. */
export function graphReasonText(graph: { reason: GraphReason; revisionReason: RevisionReason; restores: number }): string {
  return reasonText(graph.reason, graph.revisionReason, graph.restores);
}
