import { ServerReflection, ServerReflectionService } from "nice-grpc-server-reflection";

/**
 * gRPC server reflection, so that grpcurl and the like call the server without the .proto
 * files. nice-grpc-server-reflection serves `grpc.reflection.v1`; older grpcurl releases and
 * other older tools ask only `grpc.reflection.v1alpha`, whose messages are the same on the wire
 * under another package, so the same implementation is served under that name too.
 *
 * Listed: the services the descriptor set describes and the server serves to callers (the
 * reflection services themselves are not, as they are not described in it).
 */
export function reflectionServices(descriptorSet: Uint8Array, serviceNames: readonly string[]) {
  const implementation = ServerReflection(descriptorSet, [...serviceNames]);
  const v1 = ServerReflectionService;
  const v1alpha = {
    serverReflectionInfo: { ...v1.serverReflectionInfo, path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" },
  } as unknown as typeof v1;
  return [
    { definition: v1, implementation },
    { definition: v1alpha, implementation },
  ];
}

/** The health service's full name, as reflection lists it (the descriptor set describes it: proto/grpc/health). */
export const HEALTH_SERVICE = "grpc.health.v1.Health";
