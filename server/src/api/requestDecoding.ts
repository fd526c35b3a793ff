import { BinaryReader, BinaryWriter, type MessageFns, WireType } from "@drover/shared";
import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";

/**
 * grpc-js answers INTERNAL ("Error deserializing request") whenever a request's decoder
 * throws, before any middleware runs: for bytes that are not protobuf, and for a uint64 above
 * 2^53 - 1, which the generated decoder (forceLong=number) refuses to turn into a number.
 * Both are the client's mistake. So the served request decoders never throw: they return an
 * `UndecodableRequest` saying what is wrong, and `refuseUndecodableRequests` answers it with
 * INVALID_ARGUMENT once the call has passed authentication.
 */
export class UndecodableRequest {
  constructor(readonly message: string) {}
}

/**
 * The requests that carry a NodeTemplate, by the number of their template field. The
 * generated decoder turns a template's env map into a plain object, where a key named
 * __proto__ silently vanishes; such a request is refused instead (HTTP: fastify refuses a
 * JSON body with __proto__ already).
 */
const TEMPLATE_FIELDS: Record<string, number> = { "drover.v1.SetSpecRequest": 13, "drover.v1.SetTemplateRequest": 2 };
/** NodeTemplate's `map<string, string> env = 3`; a map entry's key is its field 1. */
const ENV_FIELD = 3;

/** The length-delimited values of one field of a message's bytes. */
function fieldsOf(input: Uint8Array, wanted: number): Uint8Array[] {
  const found: Uint8Array[] = [];
  const reader = new BinaryReader(input);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === wanted && wireType === WireType.LengthDelimited) found.push(reader.bytes());
    else reader.skip(wireType);
  }
  return found;
}

const isProtoKey = (key: Uint8Array) => Buffer.from(key).toString("utf8") === "__proto__";

/** SetTemplateRequest's `google.protobuf.Struct template_patch = 3`. */
const TEMPLATE_PATCH_FIELD = 3;

/**
 * Whether a google.protobuf.Struct has a key named __proto__ at any depth: its `fields` map
 * (1) holds entries of a key (1) and a Value (2), whose struct_value (5) is a Struct and whose
 * list_value (6) holds Values (1).
 */
function structHasProtoKey(struct: Uint8Array): boolean {
  const valueHasProtoKey = (value: Uint8Array): boolean =>
    fieldsOf(value, 5).some(structHasProtoKey) || fieldsOf(value, 6).some((list) => fieldsOf(list, 1).some(valueHasProtoKey));
  return fieldsOf(struct, 1).some((entry) => fieldsOf(entry, 1).some(isProtoKey) || fieldsOf(entry, 2).some(valueHasProtoKey));
}

/** Whether a SetTemplateRequest's template patch has a key named __proto__, which its decoded object would lose. */
function patchHasProtoKey(bytes: Uint8Array): boolean {
  try {
    return fieldsOf(bytes, TEMPLATE_PATCH_FIELD).some(structHasProtoKey);
  } catch {
    return false;
  }
}

/** Whether the template at `templateField` has an env entry whose key is __proto__. */
function envHasProtoKey(bytes: Uint8Array, templateField: number): boolean {
  try {
    for (const template of fieldsOf(bytes, templateField)) {
      for (const entry of fieldsOf(template, ENV_FIELD)) {
        if (fieldsOf(entry, 1).some(isProtoKey)) return true;
      }
    }
  } catch {
    // The decoder read these bytes: a part it skipped is not a template.
  }
  return false;
}

/** The largest whole number a request may carry: 2^53 - 1. */
const LARGEST = BigInt(Number.MAX_SAFE_INTEGER);

/** `decode` of a request type that returns an UndecodableRequest instead of throwing. */
export function tolerantDecoder<T>(type: MessageFns<T>, typeName: string): MessageFns<T> {
  return {
    ...type,
    decode: (input, length) => {
      // grpc-js hands over the request's bytes; a reader means a caller decoding a nested message.
      if (input instanceof BinaryReader) return type.decode(input, length);
      let decoded: T;
      try {
        decoded = type.decode(input, length);
      } catch (error) {
        return new UndecodableRequest(whyUndecodable(type, typeName, input, error as Error)) as T;
      }
      const templateField = TEMPLATE_FIELDS[typeName];
      if (templateField !== undefined && envHasProtoKey(input, templateField)) {
        return new UndecodableRequest(
          "template env name __proto__ is refused: a JavaScript object cannot hold it as a plain key, so it would be lost; rename the variable",
        ) as T;
      }
      if (typeName === "drover.v1.SetTemplateRequest" && patchHasProtoKey(input)) {
        return new UndecodableRequest(
          "template_patch key __proto__ is refused: a JavaScript object cannot hold it as a plain key, so it would be lost; rename the variable",
        ) as T;
      }
      return decoded;
    },
  };
}

/** Answers a request its decoder could not read with INVALID_ARGUMENT and the reason. */
export const refuseUndecodableRequests = async function* refuseUndecodable<Request, Response>(
  call: Parameters<ServerMiddleware>[0] & { request: Request },
  context: CallContext,
) {
  if (call.request instanceof UndecodableRequest) throw new ServerError(Status.INVALID_ARGUMENT, call.request.message);
  return yield* call.next(call.request, context);
} as ServerMiddleware;

/** One line on what is wrong with bytes the generated decoder threw on. */
function whyUndecodable<T>(type: MessageFns<T>, typeName: string, bytes: Uint8Array, error: Error): string {
  const tooLarge = largeNumber(bytes);
  if (tooLarge) {
    const name = fieldName(type, tooLarge.field) ?? `field ${tooLarge.field}`;
    return `${name} ${tooLarge.value} is invalid: it must be at most ${LARGEST} (2^53 - 1)`;
  }
  const reason =
    error.message === "premature EOF"
      ? "it ends in the middle of a field"
      : /^cant skip wire type (\d+)/.test(error.message)
        ? `it holds a field of wire type ${/(\d+)/.exec(error.message)![1]}, which protobuf does not have`
        : error.message;
  return `the request is not a valid ${typeName} (${reason}): send the message proto/drover/v1/drover.proto describes`;
}

/** The first top-level varint field above 2^53 - 1, if the bytes hold one. */
function largeNumber(bytes: Uint8Array): { field: number; value: bigint } | undefined {
  const reader = new BinaryReader(bytes);
  try {
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (wireType === WireType.Varint) {
        const value = BigInt(reader.uint64());
        if (value > LARGEST) return { field, value };
      } else {
        reader.skip(wireType);
      }
    }
  } catch {
    // The bytes are broken past this point: whatever was found so far is all there is.
  }
  return undefined;
}

/**
 * The proto name of a message's field, by its number: the property that a message holding
 * only that field (set to 1) decodes into, in snake case. Undefined when it is not a number.
 */
function fieldName<T>(type: MessageFns<T>, field: number): string | undefined {
  try {
    const decoded = type.decode(new BinaryWriter().uint32((field << 3) | WireType.Varint).uint64(1).finish()) as Record<string, unknown>;
    const property = Object.keys(decoded).find((key) => decoded[key] === 1);
    return property?.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
  } catch {
    return undefined;
  }
}
