import { DroverServiceDefinition, type DroverServiceImplementation, type MessageFns } from "@drover/shared";
import type { CallContext, ServerMiddleware, ServerMiddlewareCall } from "nice-grpc";
import type { Logger } from "pino";
import { errorMiddleware } from "../api/errorMiddleware.js";
import type { StreamContext } from "../api/StreamOutlet.js";

type Methods = typeof DroverServiceDefinition.methods;
export type MethodName = keyof Methods;
type MessageOf<Fns> = Fns extends MessageFns<infer Message> ? Message : never;
export type RequestOf<Name extends MethodName> = MessageOf<Methods[Name]["requestType"]>;
export type ResponseOf<Name extends MethodName> = MessageOf<Methods[Name]["responseType"]>;
export type UnaryMethod = { [Name in MethodName]: Methods[Name]["responseStream"] extends false ? Name : never }[MethodName];
export type StreamMethod = Exclude<MethodName, UnaryMethod>;

type Context = CallContext & StreamContext;
type Handler = (request: unknown, context: Context) => Promise<unknown> | AsyncIterable<unknown>;

/**
 * Calls the gRPC service's handlers for the HTTP API: the same functions, through the same
 * error middleware, so that validation, behaviour and error codes are those of a gRPC call
 * (a domain error becomes its status; anything unexpected is logged and becomes INTERNAL).
 * Responses come back as complete messages, every field present.
 */
export class ServiceCaller {
  private readonly middleware: ServerMiddleware;

  constructor(
    private readonly service: DroverServiceImplementation<StreamContext>,
    logger: Logger,
  ) {
    this.middleware = errorMiddleware(logger);
  }

  async unary<Name extends UnaryMethod>(name: Name, request: RequestOf<Name>, context: Context): Promise<ResponseOf<Name>> {
    const handler = this.handler(name);
    const calls = this.middleware(
      {
        method: methodDescriptor(name),
        requestStream: false,
        request,
        responseStream: false,
        async *next(nextRequest: unknown, nextContext: Context) {
          return await (handler(nextRequest, nextContext) as Promise<unknown>);
        },
      } as ServerMiddlewareCall<unknown, unknown>,
      context,
    );
    const result = await calls.next();
    return responseType(name).fromPartial(result.value as never) as ResponseOf<Name>;
  }

  async *stream<Name extends StreamMethod>(name: Name, request: RequestOf<Name>, context: Context): AsyncGenerator<ResponseOf<Name>, void> {
    const handler = this.handler(name);
    const messages = this.middleware(
      {
        method: methodDescriptor(name),
        requestStream: false,
        request,
        responseStream: true,
        async *next(nextRequest: unknown, nextContext: Context) {
          yield* handler(nextRequest, nextContext) as AsyncIterable<unknown>;
        },
      } as ServerMiddlewareCall<unknown, unknown>,
      context,
    );
    for await (const message of messages) yield responseType(name).fromPartial(message as never) as ResponseOf<Name>;
  }

  private handler(name: MethodName): Handler {
    const service = this.service as unknown as Record<MethodName, Handler>;
    return (request, context) => service[name](request, context);
  }
}

function methodDescriptor(name: MethodName) {
  const method = DroverServiceDefinition.methods[name];
  return {
    path: `/${DroverServiceDefinition.fullName}/${method.name}`,
    requestStream: method.requestStream,
    responseStream: method.responseStream,
    options: method.options,
  };
}

function responseType(name: MethodName): MessageFns<unknown> {
  return DroverServiceDefinition.methods[name].responseType as MessageFns<unknown>;
}
