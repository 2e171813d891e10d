import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { headersFrom, toConnectError } from "./transport-errors.js";

// A connect-es Transport over @grpc/grpc-js. Internal services get connect's
// fully typed promise client (createClient) on the fast grpc-js stack, and the
// generated descriptors do the (de)serialization: no second code generator.

export interface GrpcTransportOptions {
  /** host:port of Herald's gRPC listener, e.g. "127.0.0.1:50051". */
  address: string;
  /** Channel credentials. @defaultValue insecure (cleartext, for in-cluster traffic) */
  credentials?: grpc.ChannelCredentials;
  /** Extra grpc-js channel options (keepalive, message size...). */
  channelOptions?: grpc.ChannelOptions;
}

export interface GrpcTransport extends Transport {
  /** Closes the underlying channel. */
  close(): void;
}

const identity = (b: Buffer) => b;

function metadataFrom(header: HeadersInit | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  new Headers(header).forEach((value, key) => md.set(key, value));
  return md;
}

function callOptions(timeoutMs: number | undefined): grpc.CallOptions {
  return timeoutMs !== undefined && timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
}

function path(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

export function createGrpcTransport(opts: GrpcTransportOptions): GrpcTransport {
  const client = new grpc.Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), opts.channelOptions);
  const encode = <I extends DescMessage>(schema: I, init: MessageInitShape<I>): Buffer =>
    Buffer.from(toBinary(schema, create(schema, init)));

  return {
    close: () => client.close(),
    async unary(method, signal, timeoutMs, header, input) {
      const md = metadataFrom(header);
      let responseHeader = new Headers();
      const message = await new Promise<MessageShape<typeof method.output>>((resolve, reject) => {
        const call = client.makeUnaryRequest(
          path(method),
          identity,
          identity,
          encode(method.input, input),
          md,
          callOptions(timeoutMs),
          (err, value) => {
            if (err) return reject(toConnectError(err));
            try {
              resolve(fromBinary(method.output, value!));
            } catch (e) {
              reject(new ConnectError(`cannot decode ${method.output.typeName}`, Code.Internal, undefined, undefined, e));
            }
          },
        );
        call.on("metadata", (m: grpc.Metadata) => (responseHeader = headersFrom(m)));
        signal?.addEventListener("abort", () => call.cancel(), { once: true });
      });
      return { stream: false, service: method.parent, method, header: responseHeader, message, trailer: new Headers() };
    },
    async stream(method, signal, timeoutMs, header, input) {
      if (method.methodKind !== "server_streaming") {
        throw new ConnectError(`${method.methodKind} is not supported by this transport`, Code.Unimplemented);
      }
      let request: MessageInitShape<typeof method.input> | undefined;
      for await (const m of input) {
        request = m;
        break;
      }
      const call = client.makeServerStreamRequest(path(method), identity, identity, encode(method.input, request ?? ({} as MessageInitShape<typeof method.input>)), metadataFrom(header), callOptions(timeoutMs));
      signal?.addEventListener("abort", () => call.cancel(), { once: true });
      async function* messages(): AsyncIterable<MessageShape<typeof method.output>> {
        try {
          for await (const chunk of call as AsyncIterable<Buffer>) yield fromBinary(method.output, chunk);
        } catch (err) {
          throw toConnectError(err as grpc.ServiceError);
        } finally {
          call.cancel();
        }
      }
      return { stream: true, service: method.parent, method, header: new Headers(), message: messages(), trailer: new Headers() };
    },
  };
}
