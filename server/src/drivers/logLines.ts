import { readFileSync } from "node:fs";
import { outputText } from "./logRecords.js";

/** The node's output in the last `bytes` of its log file, without the times its records keep. */
export function readTail(path: string, bytes: number): string {
  const log = readFileSync(path);
  return outputText(log.subarray(Math.max(0, log.length - bytes)));
}

/**
 * The line of a crashed node's log that says why: the last line that reads like an error
 * (`Error: …`, `FATAL`, `panic:`, a shell's `not found`), not the runtime's closing lines (a
 * stack frame, Node.js's version banner, the caret under a source line); else the last line.
 */
export function meaningfulLogLine(text: string, errorsOnly = false): string | undefined {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  const noise = (line: string) => /^at\s/.test(line) || /^Node\.js v\d/.test(line) || /^\^+$/.test(line) || /^throw\s/.test(line) || /^\{?\s*$/.test(line);
  const errorLike = /\b(\w*Error|Exception|FATAL|Fatal|fatal|panic|ERROR|not found|No such file|Permission denied|Killed|Segmentation fault)\b/;
  const recent = lines.slice(-50);
  for (let i = recent.length - 1; i >= 0; i--) if (errorLike.test(recent[i]!) && !noise(recent[i]!)) return recent[i];
  if (errorsOnly) return undefined;
  for (let i = recent.length - 1; i >= 0; i--) if (!noise(recent[i]!)) return recent[i];
  return undefined;
}
