import { connect, type Connection, type GlobalOptions } from "./connection.js";
import { clientCommand } from "./hints.js";
import { type Style, styleFor } from "./palette.js";
import { Output } from "./render.js";

/** What every command gets: the checked global options, where to write, and a connection made on first use. */
export interface CommandContext {
  readonly globals: GlobalOptions;
  readonly out: Output;
  readonly style: Style;
  connection(): Connection;
}

export function commandContext(globals: GlobalOptions, out: Output): CommandContext & { close(): void } {
  let connection: Connection | undefined;
  return {
    globals,
    out,
    style: styleFor(process.stdout),
    connection: () => (connection ??= connect(globals)),
    close: () => connection?.close(),
  };
}

/** Writes a JSON document: indented when a person reads it, one line when it is part of a stream. */
export function jsonText(value: unknown, options: { compact: boolean }): string {
  return options.compact ? JSON.stringify(value) : JSON.stringify(value, null, 2);
}

const interruptListeners = new Set<() => void>();

/**
 * Lets a command take Ctrl-C for itself (following a log ends quietly on it) instead of the
 * client exiting at once with 130. Returns the function that gives it back.
 */
export function onInterrupt(listener: () => void): () => void {
  interruptListeners.add(listener);
  return () => interruptListeners.delete(listener);
}

/** Tells the commands that took Ctrl-C; false when none did. */
export function interrupt(): boolean {
  for (const listener of interruptListeners) listener();
  return interruptListeners.size > 0;
}

let interruptNotices: (() => string)[] = [];

/**
 * Sets the one line Ctrl-C prints on stderr before the client exits with 130, while a command
 * is in the middle of something the server goes on with (an update it may have stored, a graph
 * it runs). The newest notice set wins. Returns the function that takes it away again.
 */
export function onInterruptNotice(notice: () => string): () => void {
  interruptNotices.push(notice);
  return () => {
    interruptNotices = interruptNotices.filter((each) => each !== notice);
  };
}

/** The line for Ctrl-C now, if a command set one. */
export function interruptNotice(): string | undefined {
  return interruptNotices.at(-1)?.();
}

/** What Ctrl-C says while a call that changes the group (an update, a rollback, a template) has had no answer. */
export function unansweredNotice(what: string): string {
  return `interrupted before the server answered: the ${what} may have been stored and its graph started; look with '${clientCommand("history")}' and '${clientCommand("tasks watch")}'`;
}

/** What Ctrl-C says while the client follows a graph: it goes on in the server without the client. */
export function followingNotice(graphId: string): string {
  return `interrupted: graph ${graphId} goes on in the server; re-attach with '${clientCommand(`tasks watch ${graphId}`)}', cancel with '${clientCommand(`graphs cancel ${graphId}`)}'`;
}
