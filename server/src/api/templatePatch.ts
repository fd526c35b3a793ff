import { NodeTemplate as ApiTemplate } from "@drover/shared";
import { InvalidArgumentError } from "../errors.js";

/**
 * SetTemplate's `template_patch`: a JSON merge patch (RFC 7386) of a template in its proto JSON
 * form. A field left out keeps its value, null removes it (the server's default fills it
 * again), and an object (env, healthCheck) is patched key by key; args, a list, is replaced
 * whole. Fields may be written in lowerCamelCase or snake_case, as proto JSON allows.
 *
 *   current  {"command": "node", "args": ["app.js"], "env": {"LOG": "info", "OLD": "1"}}
 *   patch    {"args": ["app.js", "--v"], "env": {"LOG": "debug", "OLD": null}}
 *   result   {"command": "node", "args": ["app.js", "--v"], "env": {"LOG": "debug"}}
 *
 * The patch's shape is checked here (the HTTP API's schema checks it before, for HTTP); the
 * values of the result are checked as any template is, by the caller.
 */
export function patchTemplate(current: ApiTemplate, patch: Record<string, unknown>): ApiTemplate {
  const checked = checkPatch(patch, TEMPLATE_FIELDS, "template_patch");
  return ApiTemplate.fromJSON(mergePatch(ApiTemplate.toJSON(current), checked));
}

type FieldRule = "string" | "strings" | "number" | "enum" | "env" | FieldRules;
interface FieldRules {
  [name: string]: FieldRule;
}

const HEALTH_CHECK_FIELDS: FieldRules = {
  type: "enum",
  path: "string",
  intervalMs: "number",
  timeoutMs: "number",
  failureThreshold: "number",
  startTimeoutMs: "number",
};
const TEMPLATE_FIELDS: FieldRules = {
  command: "string",
  args: "strings",
  env: "env",
  healthCheck: HEALTH_CHECK_FIELDS,
  stopGraceMs: "number",
};

const camelCase = (name: string) => name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** The patch with its field names in lowerCamelCase, or INVALID_ARGUMENT naming the first field that is not a template's or has the wrong JSON type. */
function checkPatch(patch: Record<string, unknown>, fields: FieldRules, where: string): Record<string, unknown> {
  const checked: Record<string, unknown> = {};
  for (const [given, value] of Object.entries(patch)) {
    const name = camelCase(given);
    const rule = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (rule === undefined || Object.hasOwn(checked, name)) {
      const problem = rule === undefined ? `is not a field of ${where === "template_patch" ? "a template" : "a health check"}` : "is given twice";
      throw new InvalidArgumentError(`${where}: field ${JSON.stringify(given)} ${problem}: use ${Object.keys(fields).join(", ")}`);
    }
    const field = `${where}.${name}`;
    if (value === null) {
      checked[name] = null;
      continue;
    }
    const wrong = (expected: string) => new InvalidArgumentError(`${field} ${JSON.stringify(value)} is invalid: it must be ${expected}, or null to remove it`);
    if (rule === "string" && typeof value !== "string") throw wrong("a string");
    if (rule === "number" && typeof value !== "number") throw wrong("a number");
    if (rule === "enum" && typeof value !== "string" && typeof value !== "number") throw wrong("an enum value's name or number");
    if (rule === "strings" && !(Array.isArray(value) && value.every((item) => typeof item === "string"))) throw wrong("a list of strings");
    if (typeof rule === "object" || rule === "env") {
      if (typeof value !== "object" || Array.isArray(value)) throw wrong("an object");
    }
    if (rule === "env") {
      for (const [key, setting] of Object.entries(value as Record<string, unknown>)) {
        // A JavaScript object cannot hold __proto__ as a plain key: it would be lost.
        if (key === "__proto__") throw new InvalidArgumentError(`${field} name __proto__ is refused: a JavaScript object cannot hold it as a plain key; rename the variable`);
        if (setting !== null && typeof setting !== "string") {
          throw new InvalidArgumentError(`${field}.${key} ${JSON.stringify(setting)} is invalid: it must be a string, or null to remove the variable`);
        }
      }
    }
    checked[name] = typeof rule === "object" ? checkPatch(value as Record<string, unknown>, rule, field) : value;
  }
  return checked;
}

/** RFC 7386's MergePatch(target, patch); checkPatch has refused every key named __proto__. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = typeof target === "object" && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete result[name];
    else result[name] = mergePatch(result[name], value);
  }
  return result;
}
