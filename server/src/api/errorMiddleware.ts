import { isAbortError } from "abort-controller-x";
import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";
import type { Logger } from "pino";
import { DroverError } from "../errors.js";

const statusOf: Record<DroverError["kind"], Status> = {
  invalid_argument: Status.INVALID_ARGUMENT,
  not_found: Status.NOT_FOUND,
  failed_precondition: Status.FAILED_PRECONDITION,
  unavailable: Status.UNAVAILABLE,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  out_of_range: Status.OUT_OF_RANGE,
};

/**
 * Maps the domain's errors to gRPC status codes. Anything unexpected is logged with its
 * detail and returned as INTERNAL without it, so a client error is never UNKNOWN.
 */
export function errorMiddleware(logger: Logger): ServerMiddleware {
  return async function* mapErrors<Request, Response>(
    call: Parameters<ServerMiddleware>[0] & { request: Request },
    context: CallContext,
  ) {
    try {
      return yield* call.next(call.request, context);
    } catch (error) {
      if (error instanceof ServerError) throw error;
      if (isAbortError(error)) throw new ServerError(Status.CANCELLED, "the call was cancelled");
      // Capped: gRPC carries the message in a trailer, and a trailer too large never arrives.
      if (error instanceof DroverError) throw new ServerError(statusOf[error.kind], capped(error.message));
      logger.error({ err: error, method: call.method.path }, "internal error");
      throw new ServerError(Status.INTERNAL, "internal error: the server's log has the details");
    }
  } as ServerMiddleware;
}

const MAX_MESSAGE = 2000;

function capped(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE)}…`;
}
