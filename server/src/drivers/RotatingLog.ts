import { chmodSync, closeSync, fstatSync, linkSync, openSync, renameSync, rmSync, writeSync } from "node:fs";

export interface LogLimits {
  /** A file is rotated before a write would take it past this many bytes. */
  maxBytes: number;
  /** Files kept, the current one included (Docker's max-file): 2 keeps `<file>` and `<file>.1`. */
  maxFiles: number;
}

/**
 * A node's log file with a size cap, as Docker's json-file driver keeps one with max-size and
 * max-file: when the next write would take `<file>` past `maxBytes`, `<file>.1` becomes
 * `<file>.2` (and so on; the oldest beyond `maxFiles` is dropped), `<file>` becomes
 * `<file>.1`, and a new `<file>` begins. A node's output never takes more than
 * maxBytes × maxFiles. Files are 0600: a node's output may hold what only its operator may read.
 *
 * A write is cut after its last line that fits, so that lines stay whole where they can; a
 * single line longer than the cap is split. When the disk is full the log rotates at once, its
 * oldest file making room for the newest output; a write that still fails is dropped, so that
 * the node is never held up, and once writing works again a line in the log says how much was lost.
 *
 * It keeps bytes as they come; a node's log is written in records with times (see logRecords.ts),
 * each a line shorter than the cap, so that none is ever split.
 */
export class RotatingLog {
  private fd: number | undefined;
  private size = 0;
  private lost = { bytes: 0, reason: "" };

  constructor(
    readonly path: string,
    private readonly limits: LogLimits,
    /** Told of the first failed write after a good one (a full disk), to log it once per episode. */
    private readonly onWriteError: (error: Error) => void,
    /** Makes the log's own line (how much was lost) into what the file holds: a record, for a node's log. */
    private readonly frameNote: (line: Buffer) => Buffer = (line) => line,
  ) {}

  append(chunk: Buffer): void {
    try {
      this.writeWithNote(chunk);
    } catch (error) {
      let failure = error as NodeJS.ErrnoException;
      // A full disk: the node's oldest output makes room for its newest, once per episode.
      if (failure.code === "ENOSPC" && this.lost.bytes === 0 && this.limits.maxFiles > 1) {
        try {
          this.closeFile();
          this.rotate();
          this.writeWithNote(chunk);
          return;
        } catch (retried) {
          failure = retried as NodeJS.ErrnoException;
        }
      }
      if (this.lost.bytes === 0) this.onWriteError(failure);
      this.lost = { bytes: this.lost.bytes + chunk.length, reason: failure.code ?? failure.message };
      this.closeFile();
    }
  }

  close(): void {
    this.closeFile();
  }

  /** Writes the chunk, after a line saying how much was lost before it, if anything was. */
  private writeWithNote(chunk: Buffer): void {
    this.open();
    if (this.lost.bytes > 0) {
      this.write(this.frameNote(Buffer.from(`[drover: ${this.lost.bytes} bytes of this node's output were lost: ${this.lost.reason}]\n`)));
      this.lost = { bytes: 0, reason: "" };
    }
    this.write(chunk);
  }

  private write(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0) {
      const room = this.limits.maxBytes - this.size;
      if (rest.length <= room) {
        this.writeAll(rest);
        return;
      }
      const lastLineEnd = rest.subarray(0, Math.max(0, room)).lastIndexOf(10);
      // A line that does not fit goes whole into the next file; only one longer than a file is split.
      const part = lastLineEnd >= 0 ? lastLineEnd + 1 : this.size === 0 ? room : 0;
      this.writeAll(rest.subarray(0, part));
      rest = rest.subarray(part);
      this.rotate();
    }
  }

  private writeAll(bytes: Buffer): void {
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd!, bytes, written, bytes.length - written);
    this.size += bytes.length;
  }

  /**
   * Shifts the rotated files up by one, links the current file as `.1`, and renames a new,
   * empty file over the current name: at no moment is there no file under the name, so a
   * reader opening the log mid-rotation finds the old one or the new one.
   */
  private rotate(): void {
    this.closeFile();
    const { maxFiles } = this.limits;
    if (maxFiles > 1) {
      rmSync(`${this.path}.${maxFiles - 1}`, { force: true });
      for (let n = maxFiles - 1; n >= 2; n--) ignoreMissing(() => renameSync(`${this.path}.${n - 1}`, `${this.path}.${n}`));
      ignoreMissing(() => linkSync(this.path, `${this.path}.1`));
    }
    const fresh = `${this.path}.new`;
    closeSync(openSync(fresh, "w", 0o600));
    renameSync(fresh, this.path);
    this.open();
  }

  private open(): void {
    if (this.fd !== undefined) return;
    this.fd = openSync(this.path, "a", 0o600);
    // A file left by an earlier version may be readable by others.
    chmodSync(this.path, 0o600);
    this.size = fstatSync(this.fd).size;
  }

  private closeFile(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // Closing cannot fail in a way that matters: the next write opens the file again.
    }
  }
}

/** Runs a file operation whose file may be gone (removed by hand, or never made). */
function ignoreMissing(operation: () => void): void {
  try {
    operation();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}
