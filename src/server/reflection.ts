import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { createFileRegistry, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { mount, type MountedService } from "./services.js";

// gRPC server reflection (https://github.com/grpc/grpc/blob/master/doc/server-reflection.md),
// answered from the descriptors protoc-gen-es embeds in gen/. v1 and v1alpha
// are the same protocol under two package names, so one core answers both and
// each version is only a typed wrapper around it.

export interface ReflectionOptions {
  /** Files whose services are served; their imports are found through `file.dependencies`. */
  files: DescFile[];
  /** Fully-qualified names answered to list_services, e.g. "herald.v1.NotificationService". */
  services: string[];
}

/** The two reflection services, ready for `router.service(x.service, x.impl)` or the grpc-js listener. */
export function reflectionServices(opts: ReflectionOptions): MountedService[] {
  const index = createIndex([...opts.files, v1.file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection]);
  for (const name of opts.services) {
    // A listed service a client cannot resolve breaks `buf curl --list-methods`
    // for every service, so refuse it at startup instead.
    if (!index.registry.getService(name)) throw new Error(`reflection: service ${name} is not in the given files`);
  }
  const services = [...opts.services];
  return [
    mount(v1.ServerReflection, { serverReflectionInfo: (requests) => answerStream(index, services, requests) }),
    mount(v1alpha.ServerReflection, { serverReflectionInfo: (requests) => answerStream(index, services, requests) }),
  ];
}

/** The request shape both versions share. */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

interface Index {
  registry: FileRegistry;
  /** Names the registry does not index (methods, fields, oneofs, enum values) → their file. */
  members: Map<string, DescFile>;
  /** Serialized once: every answer reuses the same bytes. */
  encoded: Map<string, Uint8Array>;
}

function createIndex(roots: DescFile[]): Index {
  // Dependencies first, as a FileDescriptorSet must be ordered to load.
  const ordered = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (ordered.has(file.proto.name)) return;
    file.dependencies.forEach(visit);
    ordered.set(file.proto.name, file);
  };
  roots.forEach(visit);
  const files = [...ordered.values()];
  // Loading the set proves at startup that it is complete, as a client will need it.
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) }));
  const members = new Map<string, DescFile>();
  for (const type of registry) {
    const file = type.file;
    if (type.kind === "message") {
      for (const m of [...type.fields, ...type.oneofs]) members.set(`${type.typeName}.${m.name}`, file);
      // Map entries are messages in the descriptor, but get no DescMessage of their own.
      for (const n of type.proto.nestedType) members.set(`${type.typeName}.${n.name}`, file);
    } else if (type.kind === "service") {
      for (const m of type.methods) members.set(`${type.typeName}.${m.name}`, file);
    } else if (type.kind === "enum") {
      // Enum values are scoped as siblings of their enum (C++ scoping rules).
      const scope = type.typeName.slice(0, type.typeName.lastIndexOf(".") + 1);
      for (const v of type.values) members.set(`${scope}${v.name}`, file);
    }
  }
  const encoded = new Map(files.map((f) => [f.proto.name, toBinary(FileDescriptorProtoSchema, f.proto)] as const));
  return { registry, members, encoded };
}

async function* answerStream<R extends ReflectionRequest>(index: Index, services: string[], requests: AsyncIterable<R>) {
  // Files already sent on this stream; clients keep what they received.
  const sent = new Set<string>();
  for await (const request of requests) {
    yield { validHost: request.host, originalRequest: request, messageResponse: answer(index, services, request, sent) };
  }
}

function answer(index: Index, services: string[], request: ReflectionRequest, sent: Set<string>): ReflectionAnswer {
  const { registry } = index;
  const req = request.messageRequest;
  switch (req.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = registry.getFile(req.value);
      return file ? filesAnswer(index, file, sent) : notFound(`file ${req.value} not found`);
    }
    case "fileContainingSymbol": {
      const file = registry.get(req.value)?.file ?? index.members.get(req.value);
      return file ? filesAnswer(index, file, sent) : notFound(`symbol ${req.value} not found`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = req.value;
      const message = registry.getMessage(containingType);
      const ext = message && registry.getExtensionFor(message, extensionNumber);
      return ext ? filesAnswer(index, ext.file, sent) : notFound(`extension ${extensionNumber} of ${containingType} not found`);
    }
    case "allExtensionNumbersOfType": {
      if (!registry.getMessage(req.value)) return notFound(`type ${req.value} not found`);
      const numbers: number[] = [];
      for (const type of registry) {
        if (type.kind === "extension" && type.extendee.typeName === req.value) numbers.push(type.number);
      }
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: req.value, extensionNumber: numbers } };
    }
    case undefined:
      return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty message_request" } };
  }
}

/**
 * The file, then its transitive imports not yet sent on this stream. Like
 * grpc-go, the requested file itself is always sent: an empty answer would
 * read as "nothing there" to a client that did not cache the earlier one.
 */
function filesAnswer(index: Index, file: DescFile, sent: Set<string>): ReflectionAnswer {
  const out: Uint8Array[] = [];
  const queue = [file];
  const seen = new Set<string>();
  for (let f = queue.shift(); f; f = queue.shift()) {
    const name = f.proto.name;
    if (seen.has(name)) continue;
    seen.add(name);
    if (f === file || !sent.has(name)) {
      const bytes = index.encoded.get(name);
      if (bytes) out.push(bytes);
      sent.add(name);
    }
    queue.push(...f.dependencies);
  }
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}

function notFound(errorMessage: string): ReflectionAnswer {
  // Code values are the gRPC status codes the protocol asks for.
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}
