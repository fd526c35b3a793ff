/**
 * How a node's output is kept in its log file: one record a line, each with the time the
 * server received it, as kubelet keeps a container's (the CRI log format, without the stream
 * name: a node's stdout and stderr share one pipe):
 *
 *     2025-01-02T03:04:05.678Z F listening on :20001
 *     2025-01-02T03:04:06.001Z P progress: 10%...
 *     2025-01-02T03:04:07.420Z F  done
 *
 * The time is RFC 3339 in UTC with milliseconds (24 characters). `F` ends a line of the node's
 * output; `P` is a piece of a line that goes on in the next record: what arrived before its
 * newline did (the line above is `progress: 10%... done`, received at 03:04:06.001). A record is
 * never longer than MAX_RECORD_TEXT bytes of output, so a node's longest line becomes several
 * records, and every record fits in a log file (see RotatingLog, which never splits a record).
 *
 * Why records and not a side file of times: one append keeps the text and its time together,
 * whatever the disk or a crash does, and rotation stays a rename. A line written by an earlier
 * version of the server (plain output, no time) reads as a whole line of unknown time.
 */

/** The most output one record carries: kubelet's 16 KiB, or less for a log file smaller than that allows. */
export const MAX_RECORD_TEXT = 16 * 1024;

/** `2025-01-02T03:04:05.678Z F `: the length of a record's time, its tag and the spaces after each. */
export const RECORD_PREFIX_BYTES = 27;

const NEWLINE = 0x0a;
const RECORD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([FP]) /;

/** One record of a log file, read back. */
export interface LogRecord {
  /** When the server received it (ms since the epoch); undefined for a line written without a time. */
  time: number | undefined;
  /** True for a piece of a line that the next record goes on with. */
  partial: boolean;
  /** The output it carries, without its newline. */
  text: Buffer;
}

/**
 * The records for a chunk of a node's output received at `time`: a full record for each line
 * it ends, a partial one for what follows its last newline, and pieces of at most `maxText`
 * bytes of any line longer than that.
 */
export function encodeOutput(chunk: Buffer, time: number, maxText = MAX_RECORD_TEXT): Buffer {
  const stamp = new Date(time).toISOString();
  const records: Buffer[] = [];
  let start = 0;
  while (start < chunk.length) {
    const newline = chunk.indexOf(NEWLINE, start);
    const end = newline === -1 ? chunk.length : newline;
    for (let piece = start; piece < end || piece === start; piece += maxText) {
      const pieceEnd = Math.min(end, piece + maxText);
      const full = pieceEnd === end && newline !== -1;
      records.push(Buffer.from(`${stamp} ${full ? "F" : "P"} `), chunk.subarray(piece, pieceEnd), Buffer.from("\n"));
      if (pieceEnd === end) break;
    }
    start = newline === -1 ? chunk.length : newline + 1;
  }
  return Buffer.concat(records);
}

/** Reads one line of a log file (without its newline) as a record. */
export function parseRecord(line: Buffer): LogRecord {
  const match = RECORD.exec(line.subarray(0, RECORD_PREFIX_BYTES).toString("latin1"));
  if (!match) return { time: undefined, partial: false, text: line };
  return { time: Date.parse(match[1]!), partial: match[2] === "P", text: line.subarray(RECORD_PREFIX_BYTES) };
}

/** The node's output that a piece of a log file holds, as the node wrote it (its times left out). */
export function outputText(log: Buffer): string {
  const lines = splitLines(log);
  return Buffer.concat(
    lines.flatMap((line, index) => {
      const record = parseRecord(line);
      const last = index === lines.length - 1 && log.at(-1) !== NEWLINE;
      return record.partial || last ? [record.text] : [record.text, Buffer.from("\n")];
    }),
  ).toString("utf8");
}

/** The lines of a buffer, without their newlines; the last one even when it has none. */
function splitLines(buffer: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  while (start < buffer.length) {
    const newline = buffer.indexOf(NEWLINE, start);
    if (newline === -1) {
      lines.push(buffer.subarray(start));
      break;
    }
    lines.push(buffer.subarray(start, newline));
    start = newline + 1;
  }
  return lines;
}
