import { type FileHandle, open, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { delay } from "abort-controller-x";
import { type LogRecord, parseRecord } from "../drivers/logRecords.js";

const FOLLOW_POLL_MS = 250;
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Where a read of a log begins, counting back from its end; each limit that is set must hold
 * of every line read, and the read begins at the oldest line for which all do (nothing set: the
 * whole log). A line is what the node ended with a newline (or is still writing).
 */
export interface LogStart {
  /** At most this many lines: `tail -n`. */
  lines?: number;
  /** Lines back until they hold at least this many bytes of output (the line holding the byte this far back is whole). */
  bytes?: number;
  /** Only lines the server received at or after this time (ms since the epoch); a line of unknown time is older. */
  since?: number;
}

export interface LogReadOptions {
  start: LogStart;
  follow: boolean;
  /** Begin each line with the time the server received it, RFC 3339 in UTC, and a space (as `kubectl logs --timestamps`). */
  timestamps: boolean;
  signal: AbortSignal;
  ended: () => Promise<boolean>;
}

/**
 * Reads a node's log (see logRecords.ts) as the node's output: from where `start` says, then
 * (with follow) what is appended, polling, until `ended` says the writer is gone and everything
 * is read, or the signal aborts.
 *
 * The log may be rotated (`<file>` renamed to `<file>.1`, and so on, and a new `<file>` begun;
 * see RotatingLog): a start that reaches back past the current file begins in the rotated ones,
 * all opened before anything is read so that a rotation meanwhile changes nothing; a follower
 * that finds a new file under the name reads the old one to its end, then the new one from its
 * start, as `tail -F` does. A follower that falls more than a whole file behind (two rotations
 * between polls) misses the file between.
 */
export async function* readLog(path: string, options: LogReadOptions): AsyncGenerator<string> {
  const files = await openRotated(path);
  const renderer = new LogRenderer(options.timestamps);
  try {
    const from = await startPosition(files, options.start);
    // The rotated files, oldest first, are read whole from the start (only the first from `from`).
    for (let index = from.file; index >= 1; index--) {
      const file = files[index]!;
      for await (const bytes of readToEnd(file.handle!, index === from.file ? from.offset : 0)) yield* nonEmpty(renderer.push(bytes));
      // Nothing more will be written to a rotated file: a last record without its newline is all there is.
      yield* nonEmpty(renderer.flush());
    }
    let file = files[0]!.handle;
    let position = from.file === 0 ? from.offset : 0;
    for (;;) {
      if (file) {
        for await (const bytes of readToEnd(file, position)) {
          position += bytes.length;
          yield* nonEmpty(renderer.push(bytes));
        }
      }
      if (!options.follow || options.signal.aborted) break;
      const replaced = await replacement(path, file);
      if (replaced) {
        // What was written to the old file before it was renamed is read first.
        if (file) {
          for await (const bytes of readToEnd(file, position)) yield* nonEmpty(renderer.push(bytes));
          yield* nonEmpty(renderer.flush());
          await file.close();
        }
        file = replaced;
        files[0]!.handle = replaced;
        position = 0;
        continue;
      }
      if (file && (await file.stat()).size < position) {
        // Truncated in place: read it again from its start.
        position = 0;
        continue;
      }
      if (await options.ended()) break;
      try {
        await delay(options.signal, FOLLOW_POLL_MS);
      } catch {
        return;
      }
    }
    yield* nonEmpty(renderer.flush());
  } finally {
    await Promise.all(files.map((file) => file.handle?.close()));
  }
}

/** An open file of a log and its size when opened; the current file may be missing (no handle). */
interface LogFile {
  handle: FileHandle | undefined;
  size: number;
}

/** `<path>`, `<path>.1`, `<path>.2` …, newest first, opened: as many rotated files as there are in a row. */
async function openRotated(path: string): Promise<LogFile[]> {
  const files: LogFile[] = [];
  for (let index = 0; ; index++) {
    const handle = await openIfExists(index === 0 ? path : `${path}.${index}`);
    if (!handle && index > 0) return files;
    files.push({ handle, size: handle ? (await handle.stat()).size : 0 });
  }
}

/** A place in a log: the file (0 the current one, 1 `.1`, …) and the offset of a record in it. */
interface Position {
  file: number;
  offset: number;
}

/**
 * Where a read that `start` bounds begins: walks the records back from the end, line by line (a
 * line begins with the record after a full one), and stops at the first line that breaks a limit.
 * A line's time is the time of its first record, when its first piece arrived.
 */
async function startPosition(files: readonly LogFile[], start: LogStart): Promise<Position> {
  const lineLimit = start.lines !== undefined && start.lines >= 0 ? start.lines : undefined;
  const end: Position = { file: 0, offset: files[0]!.size };
  if (lineLimit === 0) return end;
  if (lineLimit === undefined && start.bytes === undefined && start.since === undefined) return { file: files.length - 1, offset: 0 };
  let accepted = end;
  let lines = 0;
  let bytes = 0;
  /** The record after the one the walk is at, in the file's order, with where it is. */
  let next: { position: Position; record: LogRecord } | undefined;
  // Whether the line that begins at `next` is read, and whether the walk goes on past it.
  const verdict = (first: LogRecord): "before" | "take" | "last" => {
    lines++;
    if (lineLimit !== undefined && lines > lineLimit) return "before";
    if (start.since !== undefined && (first.time === undefined || first.time < start.since)) return "before";
    if (lineLimit !== undefined && lines === lineLimit) return "last";
    return start.bytes !== undefined && bytes >= start.bytes ? "last" : "take";
  };
  for (const [index, file] of files.entries()) {
    if (!file.handle) continue;
    for await (const { offset, line } of linesBackward(file.handle, file.size)) {
      const record = parseRecord(line);
      if (next && !record.partial) {
        const decided = verdict(next.record);
        if (decided === "before") return accepted;
        accepted = next.position;
        if (decided === "last") return accepted;
      }
      bytes += record.text.length + (record.partial ? 0 : 1);
      next = { position: { file: index, offset }, record };
    }
  }
  // The oldest record left begins the log's first line.
  if (next && verdict(next.record) !== "before") accepted = next.position;
  return accepted;
}

/** The lines of the first `size` bytes of a file, last first, with the offset of each; a newline ending the file ends its last line. */
async function* linesBackward(handle: FileHandle, size: number): AsyncGenerator<{ offset: number; line: Buffer }> {
  let end = size;
  // The start of a line whose beginning is in a chunk not read yet.
  let rest = Buffer.alloc(0);
  let atFileEnd = true;
  while (end > 0) {
    const from = Math.max(0, end - CHUNK_BYTES);
    const chunk = Buffer.alloc(end - from);
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, from);
    const buffer = Buffer.concat([chunk.subarray(0, bytesRead), rest]);
    let lineEnd = buffer.length;
    if (atFileEnd && buffer.at(-1) === NEWLINE) lineEnd--;
    atFileEnd = false;
    for (let newline = lineEnd > 0 ? buffer.lastIndexOf(NEWLINE, lineEnd - 1) : -1; newline !== -1; newline = newline > 0 ? buffer.lastIndexOf(NEWLINE, newline - 1) : -1) {
      yield { offset: from + newline + 1, line: buffer.subarray(newline + 1, lineEnd) };
      lineEnd = newline;
    }
    rest = buffer.subarray(0, lineEnd);
    end = from;
  }
  if (size > 0) yield { offset: 0, line: rest };
}

/**
 * Turns the bytes of a log into the node's output: each record's text, a newline after a full
 * one, and with timestamps the time before each line. A record cut by the end of what was read
 * waits for the rest of it.
 */
class LogRenderer {
  private carry = Buffer.alloc(0);
  private atLineStart = true;
  private readonly decoder = new StringDecoder("utf8");

  constructor(private readonly timestamps: boolean) {}

  /** The output of the records that `bytes` completes. */
  push(bytes: Buffer): string {
    const buffer = this.carry.length > 0 ? Buffer.concat([this.carry, bytes]) : bytes;
    const lastNewline = buffer.lastIndexOf(NEWLINE);
    if (lastNewline === -1) {
      this.carry = Buffer.from(buffer);
      return "";
    }
    this.carry = Buffer.from(buffer.subarray(lastNewline + 1));
    const parts: Buffer[] = [];
    let start = 0;
    while (start <= lastNewline) {
      const newline = buffer.indexOf(NEWLINE, start);
      this.render(parseRecord(buffer.subarray(start, newline)), parts, true);
      start = newline + 1;
    }
    return this.decoder.write(Buffer.concat(parts));
  }

  /** The output of a record left without its newline where nothing more will be written. */
  flush(): string {
    if (this.carry.length === 0) return "";
    const parts: Buffer[] = [];
    this.render(parseRecord(this.carry), parts, false);
    this.carry = Buffer.alloc(0);
    return this.decoder.write(Buffer.concat(parts));
  }

  private render(record: LogRecord, parts: Buffer[], whole: boolean): void {
    if (this.atLineStart && this.timestamps && record.time !== undefined) parts.push(Buffer.from(`${new Date(record.time).toISOString()} `));
    parts.push(record.text);
    const endsLine = whole && !record.partial;
    if (endsLine) parts.push(Buffer.from("\n"));
    this.atLineStart = endsLine;
  }
}

/** The text, unless a chunk ended inside a character and left none yet. */
function* nonEmpty(text: string): Generator<string> {
  if (text !== "") yield text;
}

/** The chunks of a file from `position` to its current end. */
async function* readToEnd(file: FileHandle, position: number): AsyncGenerator<Buffer> {
  for (;;) {
    const buffer = Buffer.alloc(CHUNK_BYTES);
    const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

/** The file now under `path`, opened, when it is another than `current` (rotated, or made since); else undefined. */
async function replacement(path: string, current: FileHandle | undefined): Promise<FileHandle | undefined> {
  let now;
  try {
    now = await stat(path);
  } catch {
    return undefined;
  }
  if (current) {
    const held = await current.stat();
    if (held.ino === now.ino && held.dev === now.dev) return undefined;
  }
  return openIfExists(path);
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
