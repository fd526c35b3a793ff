import { connect, type Connection, type GlobalOptions } from "./connection.js";
import { Output, type Style, styleFor } from "./render.js";

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
