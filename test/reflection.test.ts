import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_herald_v1_notification_service, NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { reflectionServices } from "../src/server/reflection.js";

const NOTIFICATIONS = "herald.v1.NotificationService";
const LISTED = [NOTIFICATIONS, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

function mountAll(router: ConnectRouter, services: string[]): void {
  for (const s of reflectionServices({ files: [file_herald_v1_notification_service, file_grpc_health_v1_health], services })) {
    router.service(s.service, s.impl);
  }
}

/** One reflection stream driven request by request, as real clients do. */
function openStream<Req, Res>(call: (requests: AsyncIterable<Req>) => AsyncIterable<Res>) {
  const queue: Req[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  async function* requests() {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) yield next;
      else if (ended) return;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const responses = call(requests())[Symbol.asyncIterator]();
  return {
    async ask(req: Req): Promise<Res> {
      queue.push(req);
      wake?.();
      const res = await responses.next();
      if (res.done) throw new Error("stream ended");
      return res.value;
    },
    async end(): Promise<IteratorResult<Res>> {
      ended = true;
      wake?.();
      return responses.next();
    },
  };
}

/** A request either version accepts. */
interface Request {
  host?: string;
  messageRequest?:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } };
}
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

function decodeFiles(res: Response): FileDescriptorProto[] {
  if (res.messageResponse.case !== "fileDescriptorResponse") throw new Error(`unexpected ${res.messageResponse.case}`);
  return res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/**
 * What a client does with the answer. A FileDescriptorSet must list imports
 * first; the answer starts with the requested file, so order it here.
 */
function loadFiles(files: FileDescriptorProto[]) {
  const byName = new Map(files.map((f) => [f.name, f]));
  const ordered = new Map<string, FileDescriptorProto>();
  const visit = (f: FileDescriptorProto | undefined) => {
    if (!f || ordered.has(f.name)) return;
    f.dependency.forEach((d) => visit(byName.get(d)));
    ordered.set(f.name, f);
  };
  files.forEach(visit);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...ordered.values()] }));
}

// Both versions, through the same assertions.
const versions = [
  { name: "v1", open: () => openStream<Request, Response>(createClient(v1.ServerReflection, transport()).serverReflectionInfo) },
  { name: "v1alpha", open: () => openStream<Request, Response>(createClient(v1alpha.ServerReflection, transport()).serverReflectionInfo) },
];

function transport() {
  return createRouterTransport((router) => mountAll(router, LISTED));
}

describe.each(versions)("reflection $name", ({ open }) => {
  it("lists the given services and echoes host and original_request", async () => {
    const stream = open();
    const req: Request = { host: "api.example", messageRequest: { case: "listServices", value: "*" } };
    const res = await stream.ask(req);
    expect(res.validHost).toBe("api.example");
    expect(res.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    expect(res.messageResponse.case).toBe("listServicesResponse");
    if (res.messageResponse.case === "listServicesResponse") {
      expect(res.messageResponse.value.service.map((s) => s.name)).toEqual(LISTED);
    }
    expect((await stream.end()).done).toBe(true);
  });

  it("answers file_containing_symbol with the file and its imports, loadable into a registry", async () => {
    const stream = open();
    const res = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: NOTIFICATIONS } });
    const files = decodeFiles(res);
    expect(files.map((f) => f.name)).toEqual([
      "herald/v1/notification_service.proto",
      "google/protobuf/timestamp.proto",
      "herald/v1/notification.proto",
    ]);
    const registry = loadFiles(files);
    expect(registry.getService(NOTIFICATIONS)?.methods.map((m) => m.name)).toEqual(["Create", "Schedule", "Get", "Cancel", "WatchStatus", "Notify", "CreateBatch"]);
    expect(registry.getMessage("herald.v1.CreateRequest")?.field.notification?.message?.typeName).toBe("herald.v1.NotificationSpec");
    expect(registry.getMessage("google.protobuf.Timestamp")).toBeDefined();
  });

  it("resolves every kind of symbol to its file", async () => {
    const stream = open();
    const fileOf = async (symbol: string) => {
      const res = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: symbol } });
      return decodeFiles(res)[0]?.name;
    };
    expect(await fileOf("herald.v1.NotificationService.Get")).toBe("herald/v1/notification_service.proto"); // method
    expect(await fileOf("herald.v1.CreateRequest")).toBe("herald/v1/notification_service.proto"); // message
    expect(await fileOf("herald.v1.CreateRequest.idempotency_key")).toBe("herald/v1/notification_service.proto"); // field
    expect(await fileOf("herald.v1.ScheduleRequest.when")).toBe("herald/v1/notification_service.proto"); // oneof
    expect(await fileOf("herald.v1.Channel")).toBe("herald/v1/notification.proto"); // enum
    expect(await fileOf("herald.v1.CHANNEL_EMAIL")).toBe("herald/v1/notification.proto"); // enum value, C++ scoping
    expect(await fileOf("herald.v1.Recipient.email")).toBe("herald/v1/notification.proto"); // oneof member
    expect(await fileOf("grpc.health.v1.HealthCheckResponse.ServingStatus")).toBe("grpc/health/v1/health.proto"); // nested enum
    expect(await fileOf("grpc.health.v1.HealthListResponse.StatusesEntry")).toBe("grpc/health/v1/health.proto"); // nested message
    expect(await fileOf("google.protobuf.Timestamp")).toBe("google/protobuf/timestamp.proto");
  });

  it("sends each import once per stream, but always the file asked for", async () => {
    const stream = open();
    await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: NOTIFICATIONS } });
    const again = await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "herald.v1.GetRequest" } });
    expect(decodeFiles(again).map((f) => f.name)).toEqual(["herald/v1/notification_service.proto"]);
    const dep = await stream.ask({ messageRequest: { case: "fileByFilename", value: "herald/v1/notification.proto" } });
    expect(decodeFiles(dep).map((f) => f.name)).toEqual(["herald/v1/notification.proto"]);
    // A fresh stream starts from nothing.
    const fresh = await open().ask({ messageRequest: { case: "fileByFilename", value: "herald/v1/notification.proto" } });
    expect(decodeFiles(fresh).map((f) => f.name)).toEqual(["herald/v1/notification.proto", "google/protobuf/timestamp.proto"]);
  });

  it("answers file_by_filename for well-known files", async () => {
    const res = await open().ask({ messageRequest: { case: "fileByFilename", value: "google/protobuf/timestamp.proto" } });
    expect(decodeFiles(res).map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
  });

  it("answers NOT_FOUND in an error_response and keeps the stream going", async () => {
    const stream = open();
    const cases: NonNullable<Request["messageRequest"]>[] = [
      { case: "fileContainingSymbol", value: "herald.v1.Nope" },
      { case: "fileByFilename", value: "herald/v1/nope.proto" },
      { case: "fileContainingExtension", value: { containingType: "herald.v1.CreateRequest", extensionNumber: 100 } },
      { case: "allExtensionNumbersOfType", value: "herald.v1.Nope" },
    ];
    for (const messageRequest of cases) {
      const res = await stream.ask({ messageRequest });
      if (res.messageResponse.case !== "errorResponse") throw new Error(`unexpected ${res.messageResponse.case}`);
      expect(res.messageResponse.value.errorCode).toBe(Code.NotFound);
      expect(res.messageResponse.value.errorMessage).toMatch(/not found$/);
    }
    const empty = await stream.ask({});
    expect(empty.messageResponse.value).toMatchObject({ errorCode: Code.InvalidArgument });
    const after = await stream.ask({ messageRequest: { case: "listServices", value: "" } });
    expect(after.messageResponse.case).toBe("listServicesResponse");
  });

  it("lists no extension numbers for a known type without extensions", async () => {
    const res = await open().ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "herald.v1.CreateRequest" } });
    expect(res.messageResponse.case).toBe("allExtensionNumbersResponse");
    expect(res.messageResponse.value).toMatchObject({ baseTypeName: "herald.v1.CreateRequest", extensionNumber: [] });
  });
});

it("refuses at startup to list a service it cannot describe", () => {
  expect(() => reflectionServices({ files: [file_herald_v1_notification_service], services: ["herald.v1.Nope"] })).toThrow(/herald\.v1\.Nope/);
});

describe("buf curl against a real HTTP/2 server", () => {
  const buf = new URL("../node_modules/.bin/buf", import.meta.url).pathname;
  const called: string[] = [];
  let server: http2.Http2Server;
  let base: string;

  // Records which reflection version each run really used.
  const record: Interceptor = (next) => (req) => {
    called.push(req.service.typeName);
    return next(req);
  };

  beforeAll(async () => {
    const routes = (router: ConnectRouter) => {
      mountAll(router, [NOTIFICATIONS, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
      router.service(NotificationService, {
        get: (req) => ({ notification: { id: req.id } }),
        create: () => {
          throw new ConnectError("fixture", Code.Unimplemented);
        },
      });
    };
    server = http2.createServer(connectNodeAdapter({ routes, interceptors: [record] }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function curl(...args: string[]): Promise<string> {
    called.length = 0;
    const { stdout } = await promisify(execFile)(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: 30_000,
    });
    return stdout;
  }

  const methods = [
    "herald.v1.NotificationService/Create",
    "herald.v1.NotificationService/Schedule",
    "herald.v1.NotificationService/Get",
    "herald.v1.NotificationService/Cancel",
    "herald.v1.NotificationService/WatchStatus",
    "herald.v1.NotificationService/Notify",
    "herald.v1.NotificationService/CreateBatch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  ];

  it.each([
    { protocol: [], version: "grpc.reflection.v1.ServerReflection" },
    { protocol: ["--reflect-protocol", "grpc-v1alpha"], version: "grpc.reflection.v1alpha.ServerReflection" },
  ])("lists methods and calls Get with no schema ($version)", async ({ protocol, version }) => {
    const listed = (await curl(...protocol, "--list-methods", base)).trim().split("\n");
    expect(listed.sort()).toEqual([...methods].sort());
    expect(new Set(called)).toEqual(new Set([version]));

    const out = await curl(...protocol, "-d", '{"id":"x"}', `${base}/herald.v1.NotificationService/Get`);
    expect(JSON.parse(out)).toEqual({ notification: { id: "x" } });
    expect(new Set(called)).toEqual(new Set([version, NOTIFICATIONS]));
  });
});
