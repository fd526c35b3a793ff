import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { isAbortError } from "abort-controller-x";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ServerError, Status } from "nice-grpc";
import type { Logger } from "pino";

/**
 * The HTTP status of each gRPC status code, as google.rpc.Code documents them, except
 * FAILED_PRECONDITION: 409 Conflict rather than 400, because here it always means "the
 * request is sound but the resource's state refuses it" (a stale expectRevision, cancelling
 * a settled graph), which a script must tell apart from a malformed request.
 */
const HTTP_STATUS: Record<Status, number> = {
  [Status.OK]: 200,
  [Status.CANCELLED]: 499,
  [Status.UNKNOWN]: 500,
  [Status.INVALID_ARGUMENT]: 400,
  [Status.DEADLINE_EXCEEDED]: 504,
  [Status.NOT_FOUND]: 404,
  [Status.ALREADY_EXISTS]: 409,
  [Status.PERMISSION_DENIED]: 403,
  [Status.RESOURCE_EXHAUSTED]: 429,
  [Status.FAILED_PRECONDITION]: 409,
  [Status.ABORTED]: 409,
  [Status.OUT_OF_RANGE]: 400,
  [Status.UNIMPLEMENTED]: 501,
  [Status.INTERNAL]: 500,
  [Status.UNAVAILABLE]: 503,
  [Status.DATA_LOSS]: 500,
  [Status.UNAUTHENTICATED]: 401,
};

const INTERNAL_MESSAGE = "internal error: the server's log has the details";
const BODY_LIMIT_MIB = 1;
export const BODY_LIMIT_BYTES = BODY_LIMIT_MIB * 1024 * 1024;

/** What an HTTP client is told of a failure: `{"error": {"code": "NOT_FOUND", "message": "…"}}` with `httpStatus`. */
export interface ApiError {
  httpStatus: number;
  code: keyof typeof Status;
  message: string;
}

export function apiError(status: Status, message: string): ApiError {
  return { httpStatus: HTTP_STATUS[status], code: Status[status] as keyof typeof Status, message };
}

export const errorBody = (error: ApiError) => ({ error: { code: error.code, message: error.message } });

/** A client's mistake found before the service is called (a bad body, an unknown route). */
export class HttpRequestError extends Error {
  constructor(
    readonly status: Status,
    message: string,
    readonly httpStatus = HTTP_STATUS[status],
  ) {
    super(message);
    this.name = "HttpRequestError";
  }
}

/**
 * 415 for a request that changes something without `Content-Type: application/json`, body or
 * not: a web page can send a form or `text/plain` POST, or one with no body, to any address
 * without a preflight; it cannot send JSON without one, and this API answers none.
 */
export function notJsonError(request: FastifyRequest, accepted: readonly string[] = [JSON_TYPE]): HttpRequestError {
  const given = request.headers["content-type"];
  const headers = accepted.map((type) => `'Content-Type: ${type}'`).join(" or ");
  const message =
    given === undefined
      ? `${request.method} ${request.url.split("?")[0]} needs the header ${headers}, also without a body: add it (curl -H 'Content-Type: ${accepted[0]}')`
      : `content type ${JSON.stringify(given)} is not accepted: send the body as JSON with ${headers}`;
  return new HttpRequestError(Status.INVALID_ARGUMENT, message, 415);
}

export const JSON_TYPE = "application/json";
/** A JSON merge patch (RFC 7386), as a PATCH may say its body is. */
export const MERGE_PATCH_TYPE = "application/merge-patch+json";

/**
 * What to tell the client of an error. The service's errors arrive as ServerError (the gRPC
 * error middleware mapped them); fastify's own (bad body, wrong content type, too large)
 * carry a 4xx statusCode; anything else is internal: logged with its detail, returned without.
 */
export function apiErrorOf(error: unknown, request: FastifyRequest, logger: Logger): ApiError {
  if (error instanceof HttpRequestError) return { ...apiError(error.status, error.message), httpStatus: error.httpStatus };
  if (error instanceof ServerError) return apiError(error.code, error.details);
  if (isAbortError(error)) return apiError(Status.CANCELLED, "the call was cancelled");
  const { code, statusCode, message } = error as { code?: string; statusCode?: number; message?: string };
  switch (code) {
    case "FST_ERR_VALIDATION":
      return apiError(Status.INVALID_ARGUMENT, message ?? "the request is invalid");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return apiErrorOf(notJsonError(request), request, logger);
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { ...apiError(Status.INVALID_ARGUMENT, `the body is larger than ${BODY_LIMIT_MIB} MiB`), httpStatus: 413 };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return apiError(Status.INVALID_ARGUMENT, "the body is not as long as its Content-Length header says");
    case "FST_ERR_BAD_URL":
      return apiError(Status.INVALID_ARGUMENT, `the path ${shortPath(request.url)} is not valid URL encoding: write a '%' as %25`);
    case "FST_ERR_MAX_PARAM_LENGTH":
      return {
        ...apiError(Status.INVALID_ARGUMENT, `the path ${shortPath(request.url)} has a part longer than ${MAX_PATH_PART} characters: group names and ids are much shorter`),
        httpStatus: 414,
      };
  }
  if (typeof statusCode === "number" && statusCode >= 400 && statusCode < 500) {
    // Raised by fastify before any handler ran (a malformed request line, a bad content length).
    return { ...apiError(Status.INVALID_ARGUMENT, message ?? "the request is malformed"), httpStatus: statusCode };
  }
  logger.error({ err: error, method: request.method, url: request.url }, "internal error in the HTTP API");
  return apiError(Status.INTERNAL, INTERNAL_MESSAGE);
}

/** fastify's limit on one part of a path (`maxParamLength`). */
const MAX_PATH_PART = 100;

/** A path to quote in a message: its first 60 characters. */
function shortPath(url: string): string {
  const path = url.split("?")[0]!;
  return path.length <= 60 ? path : `${path.slice(0, 60)}…`;
}

/**
 * Answers what Node's HTTP parser refuses before fastify sees a request (not HTTP, headers
 * or a request line too long, too slow to arrive), in the API's JSON shape, and closes the
 * connection, as Node would.
 */
export function writeClientError(error: Error & { code?: string; rawPacket?: unknown }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const rawPacket = Buffer.isBuffer(error.rawPacket) ? error.rawPacket : undefined;
  let answer: ApiError;
  if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    answer = { ...apiError(Status.DEADLINE_EXCEEDED, "the request did not arrive in time"), httpStatus: 408 };
  } else if (error.code === "HPE_HEADER_OVERFLOW") {
    // The request line counts toward the header limit: a first line of more than half of it is an overlong URL.
    const lineEnd = rawPacket?.indexOf("\r\n") ?? -1;
    const firstLineLength = lineEnd === -1 ? (rawPacket?.length ?? 0) : lineEnd;
    answer =
      firstLineLength > 8192
        ? { ...apiError(Status.INVALID_ARGUMENT, "the URL is too long: the API's paths and query strings are short"), httpStatus: 414 }
        : { ...apiError(Status.INVALID_ARGUMENT, "the request's headers are too large (over 16 KiB)"), httpStatus: 431 };
  } else {
    answer = apiError(Status.INVALID_ARGUMENT, `the request is not valid HTTP/1.1 (${error.code ?? error.message}): send it with curl or an HTTP library`);
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(answer));
  socket.end(
    `HTTP/1.1 ${answer.httpStatus} ${STATUS_CODES[answer.httpStatus]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.httpStatus === 401) reply.header("www-authenticate", 'Bearer realm="drover"');
  return reply.code(error.httpStatus).type("application/json; charset=utf-8").send(errorBody(error));
}
