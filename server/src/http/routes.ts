import { DEFAULT_GROUP, DroverServiceDefinition, Event, Graph, type MessageFns, Node, SnapshotAssembler, Spec } from "@drover/shared";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { CallContext } from "nice-grpc";
import { Status } from "nice-grpc";
import type { StreamContext } from "../api/StreamOutlet.js";
import { HttpRequestError, JSON_TYPE, MERGE_PATCH_TYPE, notJsonError } from "./httpErrors.js";
import { answerOtherMethods } from "./methodNotAllowed.js";
import { boolean, type JsonSchema, message, noBody, rollbackBody, SERVER_SET_SPEC_FIELDS, setSpecBody, templateBody, templatePatchBody, uint32, uint64 } from "./schemas.js";
import type { RequestOf, ResponseOf, ServiceCaller, StreamMethod, UnaryMethod } from "./ServiceCaller.js";
import { sendStream, type StreamFormat, type StreamItem, type StreamOptions, watchFormat } from "./streams.js";

/**
 * The HTTP API's routes: each one gRPC method, its request made from the path, the query
 * string and the body by the proto JSON mapping, its response sent the same way.
 *
 * | method | path | gRPC method |
 * | --- | --- | --- |
 * | GET  | /v1/groups/{group}/nodes?all=&wide= | ListNodes |
 * | GET  | /v1/groups/{group}/nodes/events?after= | WatchNodes (stream) |
 * | GET  | /v1/groups/{group}/spec | the newest revision's spec, by ListRevisions; its revision is the ETag |
 * | PUT  | /v1/groups/{group}/spec | SetSpec (a spec as read back is a valid body) |
 * | GET  | /v1/groups/{group}/revisions?limit= | ListRevisions |
 * | POST | /v1/groups/{group}:rollback | Rollback |
 * | GET  | /v1/groups/{group}/graphs?limit= | ListGraphs |
 * | GET  | /v1/groups/{group}/graphs/latest/events?after= | WatchGraph of the group's latest graph (stream) |
 * | GET  | /v1/groups/{group}/template | GetTemplate |
 * | PUT  | /v1/groups/{group}/template | SetTemplate (a new revision when the group has a spec: `update`) |
 * | PATCH | /v1/groups/{group}/template | SetTemplate with a JSON merge patch (`template_patch`) |
 * | GET  | /v1/graphs/{id} | GetGraph |
 * | GET  | /v1/graphs/{id}/events?after= | WatchGraph (stream) |
 * | POST | /v1/graphs/{id}:cancel, :pause, :resume, :promote | CancelGraph, PauseGraph, ResumeGraph, PromoteGraph |
 * | POST | /v1/groups/{group}/graphs/current:cancel, :pause, :resume, :promote | the same, of the group's graph in progress |
 * | GET  | /v1/nodes/{id} | GetNodeStats |
 * | GET  | /v1/nodes/{id}:describe | DescribeNode (the node and its events) |
 * | GET  | /v1/nodes/{id}/logs?follow=&tailLines=&sinceMs=&timestamps=&tailBytes= | NodeLogs (text stream) |
 * | POST | /v1/nodes/{id}:restart, :stop, :clone, :kill | RestartNode, StopNode, CloneNode, KillNode |
 * | GET  | /v1/groups | ListGroups |
 * | GET  | /v1/groups/{group} | GetGroup (with its newest graph's waiting tasks) |
 * | DELETE | /v1/groups/{group} | DeleteGroup (scales it to 0, then forgets it) |
 * | GET  | /v1/openapi.json | this table as an OpenAPI document (openApi.ts), with each route's schemas |
 *
 * A graph's or node's {id} may be a unique prefix of it, or its short form (`01JDX4…K2M7`).
 *
 * Custom methods follow Google's AIP-136: `POST <resource>:<verb>`, and `GET` for one that
 * only reads (`:describe`, an alternative to the plain GET of the node).
 *
 * Every PUT and POST needs `Content-Type: application/json`, with a body or without (415
 * otherwise), and a PATCH that or `application/merge-patch+json`; a DELETE takes no body, as
 * curl sends it (a web page cannot send one without a CORS preflight, which is refused);
 * another method on one of these paths gets 405 with `Allow`. `GET /healthz` (healthz.ts) is
 * the one path outside /v1/.
 *
 * Responses are the messages' proto JSON, which leaves out zero values, except for the
 * fields whose absence would mean something else when written back (see `alwaysInJson` in
 * the shared package): a spec always carries its count, version, max surge, max unavailable
 * and min-ready.
 */

/** NodeLogs' tail_lines: a number of lines, or -1 for the whole log. */
const lineCount: JsonSchema = { type: "integer", minimum: -1, maximum: Number.MAX_SAFE_INTEGER, description: "a number of lines, or -1 for all" };

export interface RouteSupport {
  caller: ServiceCaller;
  /** A gRPC call context for the request, cancelled when its client goes away or the API closes. */
  callContext(request: FastifyRequest, reply: FastifyReply): CallContext & StreamContext;
  /** How a stream reports its end and its errors. */
  streamOptions(request: FastifyRequest, format: StreamFormat, signal: AbortSignal): StreamOptions;
}

type Fields = Record<string, unknown>;
interface RequestParts {
  params: Record<string, string>;
  query: Fields;
  body: Fields;
}

/** What a watch answers: JSON lines, or server-sent events to a client that accepts them. */
const WATCH_TYPES = ["application/x-ndjson", "text/event-stream"];

/** A path parameter up to the custom method's colon. */
const ID = "(^[^:]+)";

export function registerRoutes(app: FastifyInstance, support: RouteSupport): void {
  const { caller } = support;
  /** Each route's URL pattern and its methods, for the 405 of the others. */
  const methodsOf = new Map<string, string[]>();
  const known = (method: string, url: string) => methodsOf.set(url, [...(methodsOf.get(url) ?? []), method]);

  function parts(request: FastifyRequest): RequestParts {
    return {
      params: request.params as Record<string, string>,
      query: (request.query ?? {}) as Fields,
      body: (request.body ?? {}) as Fields,
    };
  }

  function unary<Name extends UnaryMethod>(
    method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE",
    url: string,
    name: Name,
    options: {
      query?: JsonSchema;
      body?: JsonSchema;
      /** The body's media types (default JSON's); the first is the one the API documents first. */
      bodyTypes?: readonly string[];
      request: (parts: RequestParts) => Fields;
      /** What the OpenAPI document calls the operation (default: the gRPC method's name). */
      summary?: string;
      /** The response's JSON (default: the whole message's). */
      respond?: (response: ResponseOf<Name>, parts: RequestParts, reply: FastifyReply) => unknown;
    },
  ) {
    const { requestType, responseType } = DroverServiceDefinition.methods[name] as unknown as {
      requestType: MessageFns<RequestOf<Name>>;
      responseType: MessageFns<ResponseOf<Name>>;
    };
    const bodyTypes = options.bodyTypes ?? [JSON_TYPE];
    known(method, url);
    app.route({
      method,
      url,
      ...((method === "PUT" || method === "POST" || method === "PATCH") && { onRequest: requireContentType(bodyTypes) }),
      schema: {
        summary: options.summary ?? DroverServiceDefinition.methods[name].name,
        querystring: options.query ?? message({}),
        ...(options.body && { body: options.body, consumes: bodyTypes }),
      },
      handler: async (request, reply) => {
        const requestParts = parts(request);
        const response = await caller.unary(name, requestType.fromJSON(options.request(requestParts)), support.callContext(request, reply));
        return options.respond ? options.respond(response, requestParts, reply) : responseType.toJSON(response);
      },
    });
  }

  function stream<Name extends StreamMethod>(
    url: string,
    name: Name,
    options: {
      query: JsonSchema;
      /** The media types of its formats, for the OpenAPI document. */
      produces: readonly string[];
      format: (request: FastifyRequest) => StreamFormat;
      request: (parts: RequestParts, request: FastifyRequest) => Fields;
      send: (message: ResponseOf<Name>, index: number, request: RequestOf<Name>) => StreamItem[] | string;
    },
  ) {
    const { requestType } = DroverServiceDefinition.methods[name] as unknown as { requestType: MessageFns<RequestOf<Name>> };
    known("GET", url);
    const schema = { summary: DroverServiceDefinition.methods[name].name, querystring: options.query, produces: options.produces };
    app.get(url, { schema }, async (request, reply) => {
      const call = requestType.fromJSON(options.request(parts(request), request));
      const context = support.callContext(request, reply);
      const format = options.format(request);
      const messages = caller.stream(name, call, context);
      async function* batches() {
        let index = 0;
        for await (const response of messages) yield options.send(response, index++, call);
      }
      return sendStream(reply, batches(), support.streamOptions(request, format, context.signal));
    });
  }

  unary("GET", "/v1/groups/:group/nodes", "listNodes", {
    query: message({ all: boolean, wide: boolean }),
    request: ({ params, query }) => ({ ...query, group: params.group }),
  });
  // The spec as PUT takes it, so that a spec read is a body that writes it back; its revision is the ETag.
  unary("GET", "/v1/groups/:group/spec", "listRevisions", {
    summary: "GetSpec (the newest revision's spec, by ListRevisions)",
    request: ({ params }) => ({ group: params.group, limit: 1 }),
    respond: (response, { params }, reply) => {
      const current = response.revisions[0];
      if (!current?.spec) {
        const group = params.group || DEFAULT_GROUP;
        throw new HttpRequestError(Status.NOT_FOUND, `group ${group} has no spec: set one with PUT /v1/groups/${group}/spec`);
      }
      reply.header("etag", `"${current.revision}"`);
      return Spec.toJSON(current.spec);
    },
  });
  unary("PUT", "/v1/groups/:group/spec", "setSpec", {
    body: setSpecBody,
    request: ({ params, body }) => ({ ...withPercentFields(withoutServerSetFields(body)), group: params.group }),
  });
  unary("GET", "/v1/groups/:group/revisions", "listRevisions", {
    query: message({ limit: uint32 }),
    request: ({ params, query }) => ({ ...query, group: params.group }),
  });
  unary("POST", `/v1/groups/:group${ID}::rollback`, "rollback", {
    body: rollbackBody,
    request: ({ params, body }) => ({ ...body, group: params.group }),
  });
  unary("GET", "/v1/groups/:group/graphs", "listGraphs", {
    query: message({ limit: uint32 }),
    request: ({ params, query }) => ({ ...query, group: params.group }),
  });
  unary("GET", "/v1/groups/:group/template", "getTemplate", { request: ({ params }) => ({ group: params.group }) });
  unary("PUT", "/v1/groups/:group/template", "setTemplate", {
    body: templateBody,
    request: ({ params, body }) => ({ group: params.group, template: body }),
  });
  unary("PATCH", "/v1/groups/:group/template", "setTemplate", {
    body: templatePatchBody,
    bodyTypes: [MERGE_PATCH_TYPE, JSON_TYPE],
    request: ({ params, body }) => ({ group: params.group, templatePatch: body }),
  });
  unary("GET", "/v1/graphs/:id", "getGraph", { request: ({ params }) => ({ graphId: params.id }) });
  for (const [verb, name] of [["cancel", "cancelGraph"], ["pause", "pauseGraph"], ["resume", "resumeGraph"], ["promote", "promoteGraph"]] as const) {
    unary("POST", `/v1/graphs/:id${ID}::${verb}`, name, { body: noBody, request: ({ params }) => ({ graphId: params.id }) });
    unary("POST", `/v1/groups/:group/graphs/current::${verb}`, name, { body: noBody, request: ({ params }) => ({ graphId: "", group: params.group }) });
  }
  unary("GET", "/v1/nodes/:id", "getNodeStats", { request: ({ params }) => ({ nodeId: params.id }) });
  unary("GET", `/v1/nodes/:id${ID}::describe`, "describeNode", { request: ({ params }) => ({ nodeId: params.id }) });
  for (const [verb, name] of [["restart", "restartNode"], ["stop", "stopNode"], ["clone", "cloneNode"], ["kill", "killNode"]] as const) {
    unary("POST", `/v1/nodes/:id${ID}::${verb}`, name, { body: noBody, request: ({ params }) => ({ nodeId: params.id }) });
  }

  const watchQuery = message({ after: uint64 });
  // A large graph's snapshot comes from the service in pages; HTTP clients get it whole.
  const snapshotPages = new WeakMap<object, SnapshotAssembler>();
  const graphEvents = (response: ResponseOf<"watchGraph">, _index: number, call: object): StreamItem[] => {
    let pages = snapshotPages.get(call);
    if (!pages) snapshotPages.set(call, (pages = new SnapshotAssembler()));
    const snapshot = response.snapshot || pages.assembling ? pages.add(response) : undefined;
    return [...(snapshot ? [{ kind: "snapshot" as const, id: snapshot.sequence, data: Graph.toJSON(snapshot) }] : []), ...events(response.events)];
  };
  stream("/v1/graphs/:id/events", "watchGraph", {
    query: watchQuery,
    produces: WATCH_TYPES,
    format: watchFormat,
    request: ({ params }, request) => ({ graphId: params.id, afterSequence: resumeAfter(request) }),
    send: graphEvents,
  });
  stream("/v1/groups/:group/graphs/latest/events", "watchGraph", {
    query: watchQuery,
    produces: WATCH_TYPES,
    format: watchFormat,
    request: ({ params }, request) => ({ group: params.group, afterSequence: resumeAfter(request) }),
    send: graphEvents,
  });
  stream("/v1/groups/:group/nodes/events", "watchNodes", {
    query: watchQuery,
    produces: WATCH_TYPES,
    format: watchFormat,
    request: ({ params }, request) => ({ group: params.group, afterSequence: resumeAfter(request) }),
    // The first message of a watch that does not resume is the snapshot, even of no nodes.
    send: (response, index, call) => [
      ...(index === 0 && call.afterSequence === undefined
        ? [{ kind: "snapshot" as const, id: response.sequence, data: { nodes: response.snapshot.map((node) => Node.toJSON(node)), sequence: response.sequence } }]
        : []),
      ...events(response.events),
    ],
  });
  stream("/v1/nodes/:id/logs", "nodeLogs", {
    query: message({ follow: boolean, tailBytes: uint32, tailLines: lineCount, sinceMs: uint64, timestamps: boolean }),
    produces: ["text/plain"],
    format: () => "text",
    request: ({ params, query }) => ({ ...query, nodeId: params.id }),
    send: (response) => response.text,
  });

  unary("GET", "/v1/groups", "listGroups", { request: () => ({}) });
  unary("GET", `/v1/groups/:group${ID}`, "getGroup", { request: ({ params }) => ({ group: params.group }) });
  unary("DELETE", `/v1/groups/:group${ID}`, "deleteGroup", { request: ({ params }) => ({ group: params.group }) });

  answerOtherMethods(app, methodsOf);
}

/** A request that changes something must say it is JSON, with a body or without (see notJsonError). */
function requireContentType(types: readonly string[]): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const type = request.headers["content-type"]?.split(";")[0]!.trim().toLowerCase();
    if (type === undefined || !types.includes(type)) throw notJsonError(request, types);
  };
}

/** A SetSpec body without the fields the server computes (a spec read back carries them). */
function withoutServerSetFields(body: Fields): Fields {
  const rest = { ...body };
  for (const name of SERVER_SET_SPEC_FIELDS) delete rest[name];
  return rest;
}

/**
 * A SetSpec body with Kubernetes' way of writing a percent bound (`"maxSurge": "25%"`) turned
 * into the proto's (`"maxSurgePercent": 25`); refuses a bound given as a percent twice.
 */
function withPercentFields(body: Fields): Fields {
  const rest = { ...body };
  for (const [bound, percentField] of [["maxSurge", "maxSurgePercent"], ["maxUnavailable", "maxUnavailablePercent"]] as const) {
    for (const name of [bound, snakeCase(bound)]) {
      const value = rest[name];
      if (typeof value !== "string" || !value.endsWith("%")) continue;
      if (rest[percentField] !== undefined || rest[snakeCase(percentField)] !== undefined) {
        throw new HttpRequestError(Status.INVALID_ARGUMENT, `${name} ${JSON.stringify(value)} and ${percentField} both give a percent: give one of them`);
      }
      delete rest[name];
      rest[percentField] = Number(value.slice(0, -1));
    }
  }
  return rest;
}

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

const events = (list: Event[]): StreamItem[] => list.map((event) => ({ kind: "event", id: event.sequence, data: Event.toJSON(event) }));

/** Where a watch resumes: the `Last-Event-ID` an EventSource sends when it reconnects, else `?after=`. */
function resumeAfter(request: FastifyRequest): number | undefined {
  const header = request.headers["last-event-id"];
  if (typeof header === "string" && header.trim() !== "") {
    const value = Number(header.trim());
    if (!/^\d+$/.test(header.trim()) || !Number.isSafeInteger(value)) {
      throw new HttpRequestError(Status.INVALID_ARGUMENT, `Last-Event-ID ${JSON.stringify(header)} is invalid: send the id of an event this API sent (a whole number)`);
    }
    return value;
  }
  return (request.query as { after?: number }).after;
}
