/**
 * Server reflection as grpcurl uses it, old and new: the services listed, their files found by
 * symbol and by name, and a call made from nothing but what reflection answered.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import { BinaryWriter } from "@drover/shared";
import { createChannel, createClient } from "nice-grpc";
import { ServerReflectionService } from "nice-grpc-server-reflection";
import { startTestServer } from "./support.js";

const require = createRequire(import.meta.url);
interface ReflectionRequest {
  setListServices(value: string): unknown;
  setFileContainingSymbol(value: string): unknown;
  setFileByFilename(value: string): unknown;
}
interface ReflectionResponse {
  hasErrorResponse(): boolean;
  getErrorResponse(): { getErrorMessage(): string } | undefined;
  getListServicesResponse(): { getServiceList(): { getName(): string }[] } | undefined;
  getFileDescriptorResponse(): { getFileDescriptorProtoList_asU8(): Uint8Array[] } | undefined;
}
const { ServerReflectionRequest } = require("nice-grpc-server-reflection/lib/proto/grpc/reflection/v1/reflection_pb.js") as {
  ServerReflectionRequest: new () => ReflectionRequest;
};
const { FileDescriptorProto } = require("google-protobuf/google/protobuf/descriptor_pb.js") as {
  FileDescriptorProto: {
    deserializeBinary(bytes: Uint8Array): {
      getName(): string;
      getServiceList(): { getName(): string; getMethodList(): { getName(): string }[] }[];
    };
  };
};

/** grpc.reflection.v1alpha: the v1 messages under the older package, as older grpcurl releases ask. */
const V1ALPHA = {
  serverReflectionInfo: { ...ServerReflectionService.serverReflectionInfo, path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" },
} as unknown as typeof ServerReflectionService;

describe("server reflection", { timeout: 60_000 }, () => {
  for (const [version, definition] of [["v1", ServerReflectionService], ["v1alpha", V1ALPHA]] as const) {
    it(`answers grpc.reflection.${version}: the API and the health service listed, their files found, and a call made from them`, async (t) => {
      const { server, stop } = await startTestServer();
      t.after(stop);
      const address = `127.0.0.1:${server.port}`;
      const reflection = createClient(definition, createChannel(address));
      async function ask(build: (request: ReflectionRequest) => void): Promise<ReflectionResponse> {
        async function* requests() {
          const request = new ServerReflectionRequest();
          build(request);
          yield request;
        }
        const answers: ReflectionResponse[] = [];
        for await (const answer of reflection.serverReflectionInfo(requests() as never)) answers.push(answer as unknown as ReflectionResponse);
        assert.equal(answers.length, 1);
        assert.ok(!answers[0]!.hasErrorResponse(), answers[0]!.getErrorResponse()?.getErrorMessage());
        return answers[0]!;
      }
      const files = async (build: (request: ReflectionRequest) => void) => (await ask(build)).getFileDescriptorResponse()!.getFileDescriptorProtoList_asU8();

      const listed = (await ask((request) => request.setListServices("*"))).getListServicesResponse()!.getServiceList().map((service) => service.getName());
      assert.deepEqual(listed, ["drover.v1.DroverService", "grpc.health.v1.Health"]);

      const [health] = await files((request) => request.setFileContainingSymbol("grpc.health.v1.Health"));
      const healthFile = FileDescriptorProto.deserializeBinary(health!);
      assert.equal(healthFile.getName(), "grpc/health/v1/health.proto");
      assert.deepEqual(healthFile.getServiceList()[0]!.getMethodList().map((method) => method.getName()), ["Check", "Watch"]);

      // The API's file and every file it imports, as grpcurl fetches them to describe it.
      const [api] = await files((request) => request.setFileContainingSymbol("drover.v1.DroverService"));
      const methods = FileDescriptorProto.deserializeBinary(api!).getServiceList()[0]!.getMethodList().map((method) => method.getName());
      assert.ok(methods.includes("SetTemplate") && methods.includes("WatchGraph"), methods.join(", "));
      for (const name of ["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]) {
        const [file] = await files((request) => request.setFileByFilename(name));
        assert.equal(FileDescriptorProto.deserializeBinary(file!).getName(), name);
      }

      // What grpcurl does next: a client made from the reflected descriptor alone, calling Check.
      const set = new BinaryWriter();
      set.uint32((1 << 3) | 2).bytes(health!);
      const loaded = loadPackageDefinition(loadFileDescriptorSetFromBuffer(Buffer.from(set.finish()), { enums: String })) as unknown as {
        grpc: { health: { v1: { Health: new (address: string, credentials: unknown) => HealthClient } } };
      };
      const client = new loaded.grpc.health.v1.Health(address, credentials.createInsecure());
      t.after(() => client.close());
      const answer = await new Promise<{ status: string }>((resolve, reject) => client.Check({ service: "" }, (error, response) => (error ? reject(error) : resolve(response!))));
      assert.equal(answer.status, "SERVING");
    });
  }
});

interface HealthClient {
  Check(request: { service: string }, callback: (error: Error | null, response?: { status: string }) => void): void;
  close(): void;
}
