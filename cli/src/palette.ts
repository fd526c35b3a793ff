/**
 * The client's colours, one meaning each, the same in every table and line:
 *
 *   green   done, or healthy: a task or graph that succeeded, a node running and healthy
 *   yellow  work under way: a task running or waiting, a graph running or paused, a node
 *           starting or stopping, a retry
 *   red     failed: a task, graph or node that failed, a node that is unhealthy
 *   grey    over without running to its end: stopped, cancelled, superseded, skipped
 *
 * Pending (not started, nothing to wait for) and anything else stays plain. Colour is
 * used only when stdout is a terminal that wants it (see styleFor).
 */

/** How output looks: colour only on a terminal that wants it (not with NO_COLOR or TERM=dumb). */
export interface Style {
  color: boolean;
}

/** The style for output written to `stream`: colour only when it is a terminal (a pipe or a file gets plain text). */
export function styleFor(stream: NodeJS.WriteStream): Style {
  return { color: Boolean(stream.isTTY) && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb" };
}

const ansi = (code: string) => (style: Style, text: string) => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
export const bold = ansi("1");
export const red = ansi("31");
export const green = ansi("32");
export const yellow = ansi("33");
/** Grey, as most terminals show faint text. */
export const grey = ansi("2");

/** Colours the state word of a task or a graph (and the task stream's words: `started`, `waiting`). */
export function stateColor(style: Style, word: string): string {
  switch (word) {
    case "succeeded":
      return green(style, word);
    case "failed":
      return red(style, word);
    case "running":
    case "started":
    case "waiting":
    case "paused":
      return yellow(style, word);
    case "skipped":
    case "cancelled":
    case "superseded":
      return grey(style, word);
    default:
      return word;
  }
}

/** Colours a node's state word: a running node is healthy (unhealthy is a state of its own), so green. */
export function nodeStateColor(style: Style, word: string): string {
  switch (word) {
    case "running":
      return green(style, word);
    case "starting":
    case "stopping":
      return yellow(style, word);
    case "unhealthy":
    case "failed":
      return red(style, word);
    case "stopped":
      return grey(style, word);
    default:
      return word;
  }
}
