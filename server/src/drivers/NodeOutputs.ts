import { execFileSync } from "node:child_process";
import { closeSync, constants, fstatSync, openSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import type { Logger } from "pino";
import { encodeOutput, MAX_RECORD_TEXT, RECORD_PREFIX_BYTES } from "./logRecords.js";
import { type LogLimits, RotatingLog } from "./RotatingLog.js";

/**
 * Carries each node's stdout and stderr into its capped log (see RotatingLog) through a named
 * pipe, so that the logging survives a server restart, as Docker's does with live-restore.
 *
 * A node writes to a FIFO that lives beside its record (0600, never in the node's own dir,
 * where the node could swap it for a link). The node holds the FIFO open for reading and
 * writing, so a write never meets a pipe without a reader: while no server reads — between
 * a server's exit and the next one's start — its output waits in the pipe (64 KiB on Linux),
 * and a node that writes more than that blocks until a server reads again; it never gets
 * SIGPIPE. A server reads the FIFO of every node it starts or re-adopts and writes what comes
 * to the node's log, in records that keep the time it received each piece (see logRecords.ts);
 * reading ends when every holder of the write end has exited.
 */
export class NodeOutputs {
  private readonly readers = new Map<string, { socket: Socket; log: RotatingLog; ended: Promise<void> }>();

  /** The most output one record of a log carries: a record must fit in a log file whole. */
  private readonly maxRecordText: number;

  constructor(
    private readonly limits: LogLimits,
    private readonly logger: Logger,
    /** When a piece of output is received, for its record. */
    private readonly now: () => number,
  ) {
    this.maxRecordText = Math.max(1, Math.min(MAX_RECORD_TEXT, limits.maxBytes - RECORD_PREFIX_BYTES - 1));
  }

  /**
   * Makes the node's FIFO, reads it into `logFile`, and returns the descriptor the node's
   * stdout and stderr get; the caller closes it once the process has started.
   */
  open(nodeId: string, fifo: string, logFile: string): number {
    this.detach(nodeId);
    rmSync(fifo, { force: true });
    try {
      execFileSync("mkfifo", ["-m", "600", fifo], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (error) {
      const said = (error as { stderr?: Buffer }).stderr?.toString().trim() || (error as Error).message;
      throw new Error(`cannot make node ${nodeId}'s output pipe ${fifo} with mkfifo (coreutils): ${said}`, { cause: error });
    }
    // The reader first: a FIFO opened for reading with no writer yet would read as ended.
    const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const writeFd = openSync(fifo, constants.O_RDWR | constants.O_NOFOLLOW);
    this.read(nodeId, readFd, logFile);
    return writeFd;
  }

  /**
   * Reads the FIFO of a node an earlier server started (first what waited in the pipe);
   * nothing when it is read already, or when the file is not a FIFO of ours.
   */
  attach(nodeId: string, fifo: string, logFile: string): void {
    if (this.readers.has(nodeId)) return;
    let fd: number;
    try {
      fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (error) {
      this.logger.warn({ err: error, nodeId, fifo }, "cannot read the node's output pipe: its output is not logged until it is replaced");
      return;
    }
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      this.logger.warn({ nodeId, fifo }, "the node's output pipe is not a FIFO: its output is not logged until it is replaced");
      return;
    }
    this.read(nodeId, fd, logFile);
  }

  /**
   * Resolves once the node's output is read to its end and written (its processes have all
   * exited), or after `waitMs`: a process the node left behind may hold the pipe open for long.
   */
  async drained(nodeId: string, waitMs: number): Promise<void> {
    const reader = this.readers.get(nodeId);
    if (!reader) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([reader.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  /** Stops reading every pipe (the server is stopping); the nodes' output waits in their pipes for the next server. */
  close(): void {
    for (const nodeId of [...this.readers.keys()]) this.detach(nodeId);
  }

  private read(nodeId: string, fd: number, logFile: string): void {
    const frame = (output: Buffer) => encodeOutput(output, this.now(), this.maxRecordText);
    const log = new RotatingLog(
      logFile,
      this.limits,
      (error) => this.logger.warn({ err: error, nodeId, logFile }, "cannot write the node's log: its output is dropped until writing works again"),
      frame,
    );
    const socket = new Socket({ fd, readable: true, writable: false });
    const ended = new Promise<void>((resolve) => {
      socket.on("close", () => {
        log.close();
        if (this.readers.get(nodeId)?.socket === socket) this.readers.delete(nodeId);
        resolve();
      });
    });
    socket.on("data", (chunk: Buffer) => log.append(frame(chunk)));
    socket.on("error", (error) => this.logger.warn({ err: error, nodeId }, "reading the node's output pipe failed"));
    // A reader must not keep the server's process alive on its own.
    socket.unref();
    this.readers.set(nodeId, { socket, log, ended });
  }

  private detach(nodeId: string): void {
    const reader = this.readers.get(nodeId);
    if (!reader) return;
    this.readers.delete(nodeId);
    reader.socket.destroy();
    reader.log.close();
  }
}
