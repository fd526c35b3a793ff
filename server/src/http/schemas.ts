import { FailurePolicy, HealthCheckType } from "@drover/shared";

/**
 * JSON schemas of the HTTP API's bodies and query strings, checked by fastify before a
 * handler runs. They hold the proto JSON mapping's rules, not the service's: a field's JSON
 * type, the range of its protobuf type (a uint32 is never -1), enum names, and no unknown
 * field (so that a misspelt `maxsurge` is refused, not ignored). Every value the protobuf
 * message can carry reaches the service, which validates it as it does a gRPC call.
 * Fields may be written in lowerCamelCase or in the .proto's snake_case, as proto JSON allows.
 */

export type JsonSchema = Record<string, unknown>;

const UINT32_MAX = 4_294_967_295;

export const uint32: JsonSchema = { type: "integer", minimum: 0, maximum: UINT32_MAX, description: `a whole number from 0 to ${UINT32_MAX}` };
export const uint64: JsonSchema = {
  type: "integer",
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: `a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`,
};
export const boolean: JsonSchema = { type: "boolean", description: "true or false" };
export const string: JsonSchema = { type: "string", description: "a string" };
const stringList: JsonSchema = { type: "array", items: string, description: "a list of strings" };
const stringMap: JsonSchema = { type: "object", additionalProperties: string, description: "an object whose values are strings" };

/**
 * Max surge or max unavailable: a uint32 number of nodes, or, as Kubernetes writes it, a percent
 * of count in a string (`"25%"`), which the route turns into the `…Percent` field.
 */
const nodesOrPercent: JsonSchema = {
  anyOf: [uint32, { type: "string", pattern: "^[0-9]{1,9}%$" }],
  description: `a whole number from 0 to ${UINT32_MAX}, or a percent of count like "25%"`,
};

/** A protobuf enum: a value's name or its number (UNRECOGNIZED is not one). */
function enumOf(values: Record<string, string | number>): JsonSchema {
  const names = Object.keys(values).filter((name) => typeof values[name] === "number" && (values[name] as number) >= 0);
  const meaningful = names.filter((name) => (values[name] as number) > 0);
  return { enum: [...names, ...names.map((name) => values[name])], description: `one of ${meaningful.join(", ")}` };
}

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

/** An object with these fields (lowerCamelCase names) and no others. */
export function message(fields: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, schema] of Object.entries(fields)) {
    properties[name] = schema;
    properties[snakeCase(name)] = schema;
  }
  return { type: "object", properties, required, additionalProperties: false };
}

/** A body that may be left out (or empty): it then means `{}`. */
export const optional = (schema: JsonSchema): JsonSchema => ({ ...schema, type: ["object", "null"] });

const HEALTH_CHECK_FIELDS: Record<string, JsonSchema> = {
  type: enumOf(HealthCheckType),
  path: string,
  intervalMs: uint32,
  timeoutMs: uint32,
  failureThreshold: uint32,
  startTimeoutMs: uint32,
};

/** PUT /v1/groups/{group}/template: a NodeTemplate. */
export const templateBody = message({
  command: string,
  args: stringList,
  env: stringMap,
  healthCheck: message(HEALTH_CHECK_FIELDS),
  stopGraceMs: uint32,
});

/**
 * A field of a merge patch (RFC 7386): its value, or null to remove it. The JSON types are
 * listed, not given as an anyOf, so that ajv never coerces a null into one of them.
 */
function nullable(schema: JsonSchema): JsonSchema {
  const description = `${String(schema.description ?? "an object")}, or null to remove it`;
  if (Array.isArray(schema.enum)) return { ...schema, enum: [...schema.enum, null], description };
  return { ...schema, type: [schema.type, "null"], description };
}

/** A message whose every field is nullable: a merge patch of it. */
const patchOf = (fields: Record<string, JsonSchema>): Record<string, JsonSchema> =>
  Object.fromEntries(Object.entries(fields).map(([name, schema]) => [name, nullable(schema)]));

/**
 * PATCH /v1/groups/{group}/template: a JSON merge patch (RFC 7386) of a NodeTemplate. Every
 * field may be null (removed: back to its default); env's values too (that variable removed).
 */
export const templatePatchBody = message(
  patchOf({
    command: string,
    args: stringList,
    env: { type: "object", additionalProperties: nullable(string), description: "an object whose values are strings or null" },
    healthCheck: message(patchOf(HEALTH_CHECK_FIELDS)),
    stopGraceMs: uint32,
  }),
);

/**
 * PUT /v1/groups/{group}/spec: a SetSpecRequest without its group (the path names it). A
 * spec as the API returns it is a valid body: `templateHash`, which the server computes from
 * the template, is accepted and ignored, so that a spec read back can be written back (and
 * its `maxSurgePercent`, when set, wins over the `maxSurge` it was resolved to). Max surge
 * and max unavailable may also be written as Kubernetes writes them: `"maxSurge": "25%"`.
 */
export const setSpecBody = message(
  {
    count: uint32,
    version: uint32,
    maxSurge: nodesOrPercent,
    maxUnavailable: nodesOrPercent,
    maxSurgePercent: uint32,
    maxUnavailablePercent: uint32,
    dryRun: boolean,
    expectRevision: uint64,
    onFailure: enumOf(FailurePolicy),
    taskTimeoutMs: uint32,
    progressDeadlineMs: uint32,
    cpuMillis: uint32,
    memoryMb: uint32,
    template: templateBody,
    minReadyMs: uint32,
    canary: uint32,
    autoPromoteAfterMs: uint32,
    templateHash: string,
  },
  // A PUT states the whole spec: a forgotten count must not mean "scale to 0".
  ["count", "version"],
);

/** The fields of a spec's JSON that the server sets and a SetSpec body may carry back unheeded. */
export const SERVER_SET_SPEC_FIELDS = ["templateHash", "template_hash"] as const;

export const rollbackBody = optional(message({ revision: uint64, expectRevision: uint64, dryRun: boolean, withCount: boolean }));

/** The body of a custom method that takes none (`:cancel`, `:restart`, …): nothing, or `{}`. */
export const noBody = optional(message({}));

interface ValidationError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  data?: unknown;
  parentSchema?: JsonSchema;
}

/**
 * One line naming the field, its value and the rule, in the words the service uses
 * ("count -1 is invalid: it must be a whole number from 0 to 4294967295").
 */
export function validationMessage(errors: readonly ValidationError[], part: string): string {
  // Of a value that matches no branch of an anyOf, the anyOf's own error names every form it may take.
  const error = errors.find((candidate) => candidate.keyword === "anyOf") ?? errors[0];
  if (!error) return `the ${part} is invalid`;
  const inQuery = part === "querystring";
  const field = error.instancePath.slice(1).replaceAll("/", ".");
  const named = (name: string) => (inQuery ? `query parameter ${name}` : name);
  switch (error.keyword) {
    case "additionalProperties": {
      const name = [field, String(error.params.additionalProperty)].filter(Boolean).join(".");
      const known = Object.keys((error.parentSchema?.properties as object | undefined) ?? {}).filter((key) => !key.includes("_"));
      const choices = known.length > 0 ? `use ${known.join(", ")}` : "it takes none";
      return inQuery ? `unknown query parameter ${JSON.stringify(name)}: ${choices}` : `unknown field ${JSON.stringify(name)} in the body: ${choices}`;
    }
    case "required":
      return `${named([field, String(error.params.missingProperty)].filter(Boolean).join("."))} is missing: it is required`;
  }
  if (field === "") return `the ${inQuery ? "query string" : "body"} must be a JSON object: send one with 'Content-Type: application/json'`;
  const rule = typeof error.parentSchema?.description === "string" ? `it must be ${error.parentSchema.description}` : error.message;
  return `${named(field)} ${JSON.stringify(error.data)} is invalid: ${rule}`;
}
