import type { StorageFault } from "./store/Store.js";

/**
 * The errors the server's domain raises. The api layer maps each kind to one gRPC status
 * code; anything else is an internal error, logged with detail and returned without it.
 */
export abstract class DroverError extends Error {
  abstract readonly kind: "invalid_argument" | "not_found" | "failed_precondition" | "unavailable" | "resource_exhausted" | "out_of_range";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends DroverError {
  readonly kind = "invalid_argument";
}

export class NotFoundError extends DroverError {
  readonly kind = "not_found";
}

export class GraphNotFoundError extends NotFoundError {
  constructor(readonly graphId: string) {
    super(`graph ${graphId} not found: list graphs with 'client graphs ls'`);
  }
}

/** A group that has no spec: it was never updated, or it was deleted. */
export class GroupNotFoundError extends NotFoundError {
  constructor(readonly group: string) {
    super(`group ${group} does not exist: list groups with 'client groups ls'`);
  }
}

export class FailedPreconditionError extends DroverError {
  readonly kind = "failed_precondition";
}

export class UnavailableError extends DroverError {
  readonly kind = "unavailable";
}

/** The host cannot hold what was asked for. */
export class ResourceExhaustedError extends DroverError {
  readonly kind = "resource_exhausted";
}

export class NodeNotFoundError extends NotFoundError {
  constructor(readonly nodeId: string) {
    super(`node ${nodeId} not found: list nodes with 'client nodes ls --all'`);
  }
}

/**
 * A watch resumed after a sequence number whose following events retention has deleted (etcd's
 * "required revision has been compacted", Kubernetes' 410 Gone): what follows would have a gap,
 * so the watcher must start again from a snapshot.
 */
export class EventsCompactedError extends DroverError {
  readonly kind = "out_of_range";
  constructor(
    /** Which events: "events of graph <id>" or "node events of group <name>". */
    readonly stream: string,
    readonly afterSequence: number,
    /** The highest sequence number deleted: resuming after it or later is complete again. */
    readonly compactedThrough: number,
  ) {
    super(
      `cannot resume the ${stream} after sequence ${afterSequence}: the server's retention deleted them up to sequence ${compactedThrough}; watch again without a resume point to start from a fresh snapshot`,
    );
  }
}

/** The data directory or database cannot be used; the server cannot start. */
export class StorageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageError";
  }
}

/**
 * The database cannot be used right now: a full disk, an I/O error, a read-only file, a
 * lock, corruption. The call is refused UNAVAILABLE with the fault's one-line message.
 */
/** A storage fault: its message is the fault's, unless `message` words it for where it was met (a refused request). */
export class StorageFaultError extends UnavailableError {
  constructor(readonly fault: StorageFault, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? fault.message, options);
  }
}
