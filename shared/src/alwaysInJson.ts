/**
 * JSON that round-trips. Proto3's JSON mapping leaves out every field at its zero value,
 * which is right when an absent field means zero on input, and wrong when it does not: a
 * spec read back with `maxUnavailable` 0 left out, and written back, would be stored with
 * the default 1. So the fields below are always in the JSON of their message, zero or not,
 * wherever that message is turned into JSON (the HTTP API, the client's `--output json`,
 * and any message that holds one, such as a graph's spec).
 *
 * How: the generated `toJSON` of each message named here is wrapped, once, when this module
 * loads (it is part of the package's entry, so everything that imports `@drover/shared`
 * gets it). The generated code calls a nested message's `toJSON` through the same object,
 * so a Graph, a Revision or a SetSpecResponse carries its spec's fields too. Reading JSON
 * (`fromJSON`) is unchanged: these fields were always accepted.
 *
 * A field belongs here when the request that takes the value back reads its absence as
 * something other than zero. Add one when a field gains a non-zero default, or an
 * `optional` twin on input.
 */
import {
  GroupStatus,
  ListNodesResponse,
  type MessageFns,
  SetSpecResponse,
  Spec,
} from "./gen/drover/v1/drover.js";

/** The numeric fields of a message. */
type NumericField<T> = { [K in keyof T]-?: T[K] extends number ? K : never }[keyof T] & string;

const WRAPPED = Symbol.for("drover.alwaysInJson");

/**
 * Makes `type.toJSON` keep `fields` even at 0, in the message's own field order. Idempotent.
 * Returns the fields, so that the list below is also what tests and docs can read.
 */
export function keepInJson<T>(type: MessageFns<T>, fields: readonly NumericField<T>[]): readonly NumericField<T>[] {
  const marked = type as MessageFns<T> & { [WRAPPED]?: true };
  if (marked[WRAPPED]) return fields;
  const generated = type.toJSON.bind(type);
  // ts-proto's `create()` has every field, in the .proto's order; JSON names are the same lowerCamelCase names.
  const order = Object.keys(type.create() as object);
  type.toJSON = (message: T): unknown => {
    const json = generated(message) as Record<string, unknown>;
    if (fields.every((field) => field in json)) return json;
    const complete: Record<string, unknown> = {};
    for (const key of order) {
      if (key in json) complete[key] = json[key];
      else if ((fields as readonly string[]).includes(key)) complete[key] = Math.round((message as Record<string, number>)[key] ?? 0);
    }
    return complete;
  };
  marked[WRAPPED] = true;
  return fields;
}

/** Every field always in the JSON, by message. */
export const ALWAYS_IN_JSON = {
  /**
   * SetSpec takes a spec back: `count` is required in a PUT (a forgotten count must not scale
   * to 0), an absent max unavailable means 1, an absent min-ready the server's default. Max
   * surge and version follow for symmetry: a reader sees the whole strategy.
   */
  Spec: keepInJson(Spec, ["count", "version", "maxSurge", "maxUnavailable", "minReadyMs"]),
  /** The revision a client passes back as `expectRevision`, where absent means "no check" and 0 "the group has none yet". */
  ListNodesResponse: keepInJson(ListNodesResponse, ["revision"]),
  SetSpecResponse: keepInJson(SetSpecResponse, ["revision"]),
  GroupStatus: keepInJson(GroupStatus, ["revision"]),
} as const;
