import { type FileHandle, open, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { delay } from "abort-controller-x";

const FOLLOW_POLL_MS = 250;
const CHUNK_BYTES = 64 * 1024;

/**
 * Reads a log file from `tailBytes` before its end, then (with follow) what is appended,
 * polling, until `ended` says the writer is gone and everything is read, or the signal aborts.
 *
 * The log may be rotated (`<file>` renamed to `<file>.1` and a new `<file>` begun; see
 * RotatingLog): a tail longer than the current file begins in `<file>.1`, and a follower that
 * finds a new file under the name reads the old one to its end, then the new one from its
 * start, as `tail -F` does. A follower that falls more than a whole file behind (two rotations
 * between polls) misses the file between.
 */
export async function* readLog(
  path: string,
  options: { tailBytes: number; follow: boolean; signal: AbortSignal; ended: () => Promise<boolean> },
): AsyncGenerator<string> {
  const decoder = new StringDecoder("utf8");
  let file = await openIfExists(path);
  const size = file ? (await file.stat()).size : 0;
  if (size < options.tailBytes) {
    // Just rotated: the rest of the tail is the end of the previous file.
    const previous = await openIfExists(`${path}.1`);
    if (previous) {
      try {
        const previousSize = (await previous.stat()).size;
        for await (const bytes of readToEnd(previous, Math.max(0, previousSize - (options.tailBytes - size)))) yield* nonEmpty(decoder.write(bytes));
      } finally {
        await previous.close();
      }
    }
  }
  let position = Math.max(0, size - options.tailBytes);
  try {
    for (;;) {
      if (file) {
        for await (const bytes of readToEnd(file, position)) {
          position += bytes.length;
          yield* nonEmpty(decoder.write(bytes));
        }
      }
      if (!options.follow || options.signal.aborted) return;
      const replaced = await replacement(path, file);
      if (replaced) {
        // What was written to the old file before it was renamed is read first.
        if (file) {
          for await (const bytes of readToEnd(file, position)) yield* nonEmpty(decoder.write(bytes));
          await file.close();
        }
        file = replaced;
        position = 0;
        continue;
      }
      if (file && (await file.stat()).size < position) {
        // Truncated in place: read it again from its start.
        position = 0;
        continue;
      }
      if (await options.ended()) return;
      try {
        await delay(options.signal, FOLLOW_POLL_MS);
      } catch {
        return;
      }
    }
  } finally {
    await file?.close();
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
