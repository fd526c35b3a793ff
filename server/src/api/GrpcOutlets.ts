import { constants as http2 } from "node:http2";
import {
  type Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  status as GrpcStatus,
} from "@grpc/grpc-js";
import type { StreamOutlet } from "./StreamOutlet.js";

export interface GrpcOutletsOptions {
  /** How long a stream may hold messages without one of them being written before it is reset. */
  drainTimeoutMs: number;
  /** Told when a stream is reset for holding unread data too long. */
  onStalled?: () => void;
}

/**
 * The outlets of the gRPC server's response streams (see StreamOutlet), made by a grpc-js
 * server interceptor that sees every message handed to HTTP/2 and learns when it has been
 * written to the connection (grpc-js completes a message's write only then: a client that
 * does not read holds it back by flow control). grpc-js hands HTTP/2 one message at a time
 * and queues the others in the call (a Writable), so an outlet also reads that queue.
 *
 * A handler finds its call's outlet by the call's request metadata: grpc-js hands the
 * handler the very object the interceptor saw.
 *
 * One clock for all of them checks, a few times per drain timeout, for streams that hold
 * messages none of which was written for the drain timeout: a timer per message would cost
 * a thousand watchers more than their messages do.
 */
export class GrpcOutlets {
  private readonly byMetadata = new WeakMap<Metadata, GrpcOutlet>();
  private readonly open = new Set<GrpcOutlet>();
  private clock: NodeJS.Timeout | undefined;

  constructor(private readonly options: GrpcOutletsOptions) {}

  /** Registered with the grpc-js server (its `interceptors` option), first, so that it wraps the call grpc-js made. */
  readonly interceptor: ServerInterceptor = (method, call) => {
    // A call that streams nothing passes untouched: grpc-js needs only the call's interface.
    if (!method.responseStream) return call as ServerInterceptingCall;
    const outlet = new GrpcOutlet(call, this.options);
    this.watch(outlet);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        this.byMetadata.set(metadata, outlet);
        next(metadata);
      })
      // Also called once the call has ended normally (its status is sent).
      .withOnCancel(() => {
        outlet.end();
        this.open.delete(outlet);
      })
      .build();
    return new PacedCall(call, new ResponderBuilder().withStart((next) => next(listener)).build(), outlet);
  };

  /** The outlet of a response stream, given the call grpc-js gives its handler (undefined for a call that streams nothing). */
  outletOf(call: { readonly metadata: Metadata } & CallQueue): StreamOutlet | undefined {
    const outlet = this.byMetadata.get(call.metadata);
    outlet?.queueIn(call);
    return outlet;
  }

  private watch(outlet: GrpcOutlet): void {
    this.open.add(outlet);
    if (this.clock) return;
    const interval = Math.min(1000, Math.max(20, this.options.drainTimeoutMs / 4));
    this.clock = setInterval(() => {
      const now = performance.now();
      for (const each of this.open) {
        if (each.ended) this.open.delete(each);
        else each.checkStall(now);
      }
      if (this.open.size === 0) {
        clearInterval(this.clock);
        this.clock = undefined;
      }
    }, interval);
    this.clock.unref();
  }
}

/** Tells its outlet of each message it sends and of the moment HTTP/2 has written it. */
class PacedCall extends ServerInterceptingCall {
  constructor(
    next: ServerInterceptingCallInterface,
    responder: ConstructorParameters<typeof ServerInterceptingCall>[1],
    private readonly outlet: GrpcOutlet,
  ) {
    super(next, responder);
  }

  override sendMessage(message: unknown, callback: () => void): void {
    this.outlet.sending();
    super.sendMessage(message, () => {
      // The call's queue shrinks in the callback: the outlet reads it after.
      callback();
      this.outlet.written();
    });
  }

  override sendStatus(status: Parameters<ServerInterceptingCall["sendStatus"]>[0]): void {
    this.outlet.ending();
    super.sendStatus(status);
  }
}

/** What an outlet reads of the call grpc-js gives the handler (a Writable of messages). */
interface CallQueue {
  /** Messages queued, the one being written included. */
  readonly writableLength: number;
  /** Whether the handler has ended the call (its status goes out once the queue is written). */
  readonly writableEnded: boolean;
}

/**
 * One response stream: its messages not yet written (those queued in the call, and the one
 * HTTP/2 is writing), and when one last was. Its state: open → ending (its status is sent,
 * and waits behind what is unwritten) → ended (the call is over: its status went out, or
 * the client or a reset cancelled it). A reset while ending only frees what the stream
 * holds: its watcher was already told.
 */
class GrpcOutlet implements StreamOutlet {
  private state: "open" | "ending" | "ended" = "open";
  /** Messages handed to HTTP/2 and not yet written: one at most, as grpc-js sends them. */
  private unwritten = 0;
  /** The call's queue of messages, the one being written included. */
  private queue: CallQueue | undefined;
  /** When a message was last written, or the first of those unwritten sent (performance.now()). */
  private progressAt = 0;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly call: ServerInterceptingCallInterface,
    private readonly options: GrpcOutletsOptions,
  ) {}

  get ended(): boolean {
    return this.state === "ended";
  }

  /** Reads the call's queue from now on (the call grpc-js gives the handler). */
  queueIn(call: CallQueue): void {
    this.queue = call;
  }

  /** Resolves once at most one message is unwritten: the one HTTP/2 is writing. */
  drained(signal: AbortSignal): Promise<void> {
    if (this.queued() <= 1 || this.state === "ended" || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  sending(): void {
    if (this.unwritten++ === 0) this.progressAt = performance.now();
  }

  written(): void {
    this.unwritten--;
    this.progressAt = performance.now();
    if (this.queued() <= 1) this.wakeWaiters();
  }

  ending(): void {
    if (this.state === "open") this.state = "ending";
  }

  end(): void {
    this.state = "ended";
    this.wakeWaiters();
  }

  checkStall(now: number): void {
    if (this.unwritten > 0 && now - this.progressAt >= this.options.drainTimeoutMs) this.stalled();
  }

  /**
   * Resets the stream with ENHANCE_YOUR_CALM, which gRPC clients report as
   * RESOURCE_EXHAUSTED. A status cannot do it: it would wait behind the data the client does
   * not read, holding it. The reset cancels the call, so its handler lets go at once.
   */
  private stalled(): void {
    // A handler that ended its call told its client why (the status waits behind the unread data).
    if (this.state === "open" && !this.queue?.writableEnded) this.options.onStalled?.();
    const stream = http2StreamOf(this.call);
    if (stream) {
      stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
    } else {
      this.call.sendStatus({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: `the client did not read for ${this.options.drainTimeoutMs} ms` });
    }
    this.end();
  }

  private queued(): number {
    return this.queue?.writableLength ?? this.unwritten;
  }

  private wakeWaiters(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

/**
 * The HTTP/2 stream under the call grpc-js made (the first interceptor's `call`). grpc-js has
 * no public way to reset a call's stream; its base call keeps the stream as a private field.
 * watcherLimits.test.ts checks that a stalled stream is reset, so an upgrade that moves the
 * field fails there; until then, a status is sent instead, which frees nothing.
 */
function http2StreamOf(call: ServerInterceptingCallInterface): { close(code: number): void } | undefined {
  const stream = (call as unknown as { stream?: { close?: unknown } }).stream;
  return stream && typeof stream.close === "function" ? (stream as { close(code: number): void }) : undefined;
}
