import type { Database } from "better-sqlite3";
import type { RetentionPeriod } from "./Store.js";

/** A raw row that `DELETE … RETURNING` gives of each deleted event. */
type DeletedEventRow = [sequence: number, type: string, graph_id: string | null, group_name: string];

/** Whether a graph (row and tasks) expired: settled before the cutoff, and kept for nothing (see `expireGraphs`). */
const GRAPH_EXPIRED = `g.state NOT IN ('pending', 'running') AND g.finished_at < @cutoff
    AND g.id <> (SELECT MAX(id) FROM graphs WHERE group_name = g.group_name)
    AND NOT (g.reason IN ('update', 'repair') AND g.id = (SELECT MAX(id) FROM graphs
      WHERE group_name = g.group_name AND revision = g.revision AND reason IN ('update', 'repair')))`;

/**
 * Retention's SQL (the policy and its pacing are in Retention.ts). Every method is one short
 * transaction touching a bounded number of rows, so that a run over millions of rows is many
 * small pauses of the event loop, never one long one.
 */
export class SqliteRetention {
  private readonly statements: ReturnType<SqliteRetention["prepareStatements"]>;

  constructor(private readonly db: Database) {
    this.statements = this.prepareStatements();
  }

  private prepareStatements() {
    const db = this.db;
    return {
      newestSequence: db.prepare(`SELECT COALESCE(MAX(sequence), 0) FROM events`).pluck(),
      // The next page of the log: where it ends, and its first event of the retention period (where
      // the walk stops). An event stamped in the future (a clock that was set ahead) does not stop
      // it, or it would hold back every deletion until then.
      eventPage: db.prepare(`SELECT COUNT(*) AS count, MAX(sequence) AS last,
          MIN(CASE WHEN time >= @cutoff AND time <= @now THEN sequence END) AS firstKept
        FROM (SELECT sequence, time FROM events WHERE sequence > @after ORDER BY sequence LIMIT @limit)`),
      // Node events older than the cutoff, and events of graphs that settled before it or no longer exist.
      deleteEvents: db.prepare(`DELETE FROM events
        WHERE sequence > @after AND sequence <= @upTo AND sequence < @newest AND time < @cutoff
          AND (type = 'node' OR NOT EXISTS (SELECT 1 FROM graphs g WHERE g.id = events.graph_id
            AND (g.state IN ('pending', 'running') OR g.finished_at IS NULL OR g.finished_at >= @cutoff)))
        RETURNING sequence, type, graph_id, group_name`).raw(true),
      markGraphEvents: db.prepare(`INSERT INTO compacted_graph_events (graph_id, through_sequence)
        SELECT id, @through FROM graphs WHERE id = @graph
        ON CONFLICT (graph_id) DO UPDATE SET through_sequence = MAX(through_sequence, excluded.through_sequence)`),
      markNodeEvents: db.prepare(`INSERT INTO compacted_node_events (group_name, through_sequence)
        SELECT name, @through FROM groups WHERE name = @group
        ON CONFLICT (group_name) DO UPDATE SET through_sequence = MAX(through_sequence, excluded.through_sequence)`),
      graphPage: db.prepare(`SELECT g.id, (${GRAPH_EXPIRED}) AS expired FROM graphs g
        WHERE g.id > @after ORDER BY g.id LIMIT @limit`).raw(true),
      deleteTasks: db.prepare(`DELETE FROM tasks WHERE graph_id = @graph
        AND id <= (SELECT MAX(id) FROM (SELECT id FROM tasks WHERE graph_id = @graph ORDER BY id LIMIT @limit))`),
      deleteGraphMark: db.prepare(`DELETE FROM compacted_graph_events WHERE graph_id = ?`),
      deleteGraph: db.prepare(`DELETE FROM graphs WHERE id = ?`),
      // A stopped node that an unsettled graph names stays: its run may still look it up. CROSS
      // JOIN keeps groups the outer loop, so each group's stopped nodes come from the index
      // (without it SQLite scanned every node: 43 ms for 250,000 live ones).
      deleteStoppedNodes: db.prepare(`DELETE FROM nodes WHERE id IN (
        SELECT n.id FROM groups gr CROSS JOIN nodes n ON n.group_name = gr.name AND n.state = 'stopped'
        WHERE n.updated_at < @cutoff
          AND n.id NOT IN (SELECT t.node_id FROM graphs g JOIN tasks t ON t.graph_id = g.id
            WHERE g.state IN ('pending', 'running') AND t.node_id IS NOT NULL)
        LIMIT @limit)
        RETURNING id`).pluck(),
      // Of a JSON array of ids, those no node row has (by the primary key, one look-up each).
      unknownNodeIds: db.prepare(`SELECT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM nodes WHERE id = value)`).pluck(),
      graphEventsCompactedThrough: db.prepare(`SELECT through_sequence FROM compacted_graph_events WHERE graph_id = ?`).pluck(),
      nodeEventsCompactedThrough: db.prepare(`SELECT through_sequence FROM compacted_node_events WHERE group_name = ?`).pluck(),
    };
  }

  /**
   * Looks at the next `limit` events after `after`, oldest first, and deletes the node events
   * older than the cutoff and the events of graphs that settled before it (or were deleted), but
   * never the log's newest event. Each graph and each group's node events record the highest
   * sequence number deleted, in the same transaction. `next` is where the following step
   * starts; undefined once the walk reached the log's end or an event from the cutoff on.
   */
  compactEvents(period: RetentionPeriod, after: number, limit: number): { deleted: number; next?: number } {
    const s = this.statements;
    const { cutoff, now } = period;
    return this.db.transaction(() => {
      const page = s.eventPage.get({ cutoff, now, after, limit }) as { count: number; last: number | null; firstKept: number | null };
      if (page.count === 0) return { deleted: 0 };
      const upTo = page.firstKept === null ? page.last! : page.firstKept - 1;
      const newest = s.newestSequence.get() as number;
      const deleted = s.deleteEvents.all({ after, upTo, newest, cutoff }) as DeletedEventRow[];
      const graphs = new Map<string, number>();
      const groups = new Map<string, number>();
      for (const [sequence, type, graphId, group] of deleted) {
        if (type === "node") groups.set(group, Math.max(groups.get(group) ?? 0, sequence));
        else if (graphId !== null) graphs.set(graphId, Math.max(graphs.get(graphId) ?? 0, sequence));
      }
      for (const [graph, through] of graphs) s.markGraphEvents.run({ graph, through });
      for (const [group, through] of groups) s.markNodeEvents.run({ group, through });
      const done = page.firstKept !== null || page.count < limit;
      return done ? { deleted: deleted.length } : { deleted: deleted.length, next: page.last! };
    })();
  }

  /**
   * Looks at up to `limit` graphs after `after` (in id order, which is creation order) and
   * deletes the expired ones with their tasks, at most `limit` task rows in all. A graph is
   * expired once it settled before `cutoff`, unless it is its group's newest graph (what a watch
   * of the group follows) or the newest rollout graph of its revision (what `history` shows and
   * what rollback judges a revision by: without it a failed revision would pass for reached).
   * A graph too large for one step loses its tasks over several; `next` is where the following
   * step starts, undefined once every graph was looked at.
   */
  expireGraphs(cutoff: number, after: string, limit: number): { tasks: number; graphs: number; next?: string } {
    const s = this.statements;
    return this.db.transaction(() => {
      const page = s.graphPage.all({ cutoff, after, limit }) as [id: string, expired: number][];
      let tasks = 0;
      let graphs = 0;
      let handled = after;
      for (const [id, expired] of page) {
        if (expired) {
          const budget = limit - tasks;
          const removed = s.deleteTasks.run({ graph: id, limit: budget }).changes;
          tasks += removed;
          // More tasks than the step may delete: the next step goes on with this graph.
          if (removed === budget) return { tasks, graphs, next: handled };
          s.deleteGraphMark.run(id);
          s.deleteGraph.run(id);
          graphs++;
        }
        handled = id;
      }
      return page.length < limit ? { tasks, graphs } : { tasks, graphs, next: handled };
    })();
  }

  /**
   * Deletes at most `limit` nodes stopped before `cutoff` (none that an unsettled graph names)
   * in one statement, committed on return; returns their ids, for the driver to remove their files.
   */
  expireStoppedNodes(cutoff: number, limit: number): string[] {
    return this.statements.deleteStoppedNodes.all({ cutoff, limit }) as string[];
  }

  /** Of these node ids, those no node row has: nodes retention deleted (or that this database never knew). */
  unknownNodeIds(nodeIds: readonly string[]): string[] {
    return this.statements.unknownNodeIds.all(JSON.stringify(nodeIds)) as string[];
  }

  /**
   * Gives at most `pages` free pages back to the file system, when the database was created
   * with incremental auto-vacuum (see openSqliteStore); otherwise SQLite reuses them for new rows.
   */
  releaseFreePages(pages: number): { released: number; free: number } {
    const before = this.db.pragma("freelist_count", { simple: true }) as number;
    if (before === 0 || this.db.pragma("auto_vacuum", { simple: true }) !== 2) return { released: 0, free: before };
    this.db.pragma(`incremental_vacuum(${Math.max(1, Math.floor(pages))})`);
    const after = this.db.pragma("freelist_count", { simple: true }) as number;
    return { released: before - after, free: after };
  }

  graphEventsCompactedThrough(graphId: string): number {
    return (this.statements.graphEventsCompactedThrough.get(graphId) as number | undefined) ?? 0;
  }

  nodeEventsCompactedThrough(group: string): number {
    return (this.statements.nodeEventsCompactedThrough.get(group) as number | undefined) ?? 0;
  }
}
