import { open } from "node:fs/promises";
import { delay } from "abort-controller-x";

const FOLLOW_POLL_MS = 250;
const CHUNK_BYTES = 64 * 1024;

/**
 * Reads a log file from `tailBytes` before its end, then (with follow) what is appended,
 * polling, until `ended` says the writer is gone and everything is read, or the signal aborts.
 */
export async function* readLog(
  path: string,
  options: { tailBytes: number; follow: boolean; signal: AbortSignal; ended: () => Promise<boolean> },
): AsyncGenerator<string> {
  let file;
  try {
    file = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    let position = Math.max(0, (await file.stat()).size - options.tailBytes);
    const buffer = Buffer.alloc(CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead > 0) {
        position += bytesRead;
        yield buffer.toString("utf8", 0, bytesRead);
        continue;
      }
      if (!options.follow || options.signal.aborted || (await options.ended())) return;
      try {
        await delay(options.signal, FOLLOW_POLL_MS);
      } catch {
        return;
      }
    }
  } finally {
    await file.close();
  }
}
