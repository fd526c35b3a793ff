/**
 * How a person names a graph or a node: by its whole id, by the start of it, or by the short
 * form the client's tables and streams print. Both sides read references with this file: the
 * client refuses a malformed one before it calls, and the server reads it again and looks it up.
 */

import { quote } from "./format.js";
import { ULID_PATTERN } from "./limits.js";

/** The fewest characters of an id that name it: four cover about 12 days of ULID timestamps. */
export const MIN_ID_PREFIX = 4;
/** How many characters of an id its short form keeps in front, and behind the ellipsis. */
const SHORT_HEAD = 6;
const SHORT_TAIL = 4;

/**
 * An id short enough for a table cell or a stream line: `01JDX3…8JNE` (the first six characters
 * are the id's timestamp, which ids made together share; the last four tell them apart). It is
 * also a reference (see readIdReference), so what a table prints can be pasted back.
 */
export function shortId(id: string): string {
  return id.length > SHORT_HEAD + SHORT_TAIL + 2 ? `${id.slice(0, SHORT_HEAD)}…${id.slice(-SHORT_TAIL)}` : id;
}

/**
 * A graph or node named by a person: a whole id, or the ids that begin with `prefix` and end
 * with `suffix` (empty: any end), which must turn out to be exactly one.
 */
export type IdReference = { id: string } | { prefix: string; suffix: string };

/** `01JDX4`, `01JDX4…8JNE`: a reference as the person could have written it, for messages. */
export function referenceText(reference: IdReference): string {
  if ("id" in reference) return reference.id;
  return reference.suffix === "" ? reference.prefix : `${reference.prefix}…${reference.suffix}`;
}

const CROCKFORD = "[0-9A-HJKMNP-TV-Z]";
/** A prefix, then optionally an ellipsis (one character, or three dots) and the id's last characters. */
const PARTIAL = new RegExp(`^(${CROCKFORD}+)(?:(?:…|\\.\\.\\.)(${CROCKFORD}*))?$`);
const ID_LENGTH = 26;

/**
 * Reads a reference to a graph or a node (`kind` names it in the problem): the whole id (a
 * ULID: 26 characters of Crockford's base 32, in either case), the first MIN_ID_PREFIX or
 * more of its characters (`01JDX4`), or its short form (`01JDX4…8JNE`, `01JDX4...8JNE`, or
 * `01JDX4…`). Returns the reference, upper-cased, or the rule it breaks, in one line.
 */
export function readIdReference(kind: "graph" | "node", text: string): IdReference | { problem: string } {
  const upper = text.toUpperCase();
  if (ULID_PATTERN.test(upper)) return { id: upper };
  const match = PARTIAL.exec(upper);
  const prefix = match?.[1] ?? "";
  const suffix = match?.[2] ?? "";
  // The ellipsis stands for at least one character: the whole id is written without it.
  if (!match || prefix.length + suffix.length >= ID_LENGTH) {
    return {
      problem: `${kind} id ${quote(text)} is invalid: give the whole id (a 26-character ULID), at least its first ${MIN_ID_PREFIX} characters, or its short form as tables print it (${kind === "graph" ? "01JDX4…K2M7" : "01JDX3…8JNE"})`,
    };
  }
  if (prefix.length < MIN_ID_PREFIX) {
    return { problem: `${kind} id ${quote(text)} is too short: give at least its first ${MIN_ID_PREFIX} characters, or the whole id` };
  }
  return { prefix, suffix };
}

/** Whether a reference names one id exactly (no lookup needed). */
export const isWholeId = (reference: IdReference): reference is { id: string } => "id" in reference;
