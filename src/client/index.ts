import { createClient, type Client } from "@connectrpc/connect";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import type { DescService } from "@bufbuild/protobuf";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { SuppressionService } from "../../gen/herald/v1/suppression_pb.js";
import { RecipientService } from "../../gen/herald/v1/recipient_pb.js";
import { createGrpcTransport, type GrpcTransportOptions } from "./grpc-transport.js";

export { createGrpcTransport } from "./grpc-transport.js";
export type { GrpcTransport, GrpcTransportOptions } from "./grpc-transport.js";
export { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
export * from "../../gen/herald/v1/notification_pb.js";
export * from "../../gen/herald/v1/notification_service_pb.js";
export * from "../../gen/herald/v1/dead_letter_pb.js";
export * from "../../gen/herald/v1/template_pb.js";
export * from "../../gen/herald/v1/operations_pb.js";
export * from "../../gen/herald/v1/suppression_pb.js";
export * from "../../gen/herald/v1/recipient_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";

export interface HeraldClientOptions extends GrpcTransportOptions {
  /** The API key; sent as `authorization: Bearer <key>` on every call. */
  apiKey: string;
}

export type HeraldClient = Client<typeof NotificationService> & { close(): void };
export type DeadLetterClient = Client<typeof DeadLetterService> & { close(): void };
export type TemplateClient = Client<typeof TemplateService> & { close(): void };
export type OperationsClient = Client<typeof OperationsService> & { close(): void };
export type SuppressionClient = Client<typeof SuppressionService> & { close(): void };
export type RecipientClient = Client<typeof RecipientService> & { close(): void };

/** A typed client of one Herald service over grpc-js, sending the API key on every call. */
function serviceClient<S extends DescService>(service: S, opts: HeraldClientOptions): Client<S> & { close(): void } {
  const transport = createGrpcTransport(opts);
  const withKey = (header: HeadersInit | undefined): Headers => {
    const h = new Headers(header);
    h.set("authorization", `Bearer ${opts.apiKey}`);
    return h;
  };
  // createClient takes no interceptors; the key is added where calls leave.
  const authed: typeof transport = {
    ...transport,
    unary: (method, signal, timeoutMs, header, input, values) =>
      transport.unary(method, signal, timeoutMs, withKey(header), input, values),
    stream: (method, signal, timeoutMs, header, input, values) =>
      transport.stream(method, signal, timeoutMs, withKey(header), input, values),
  };
  return Object.assign(createClient(service, authed), { close: () => transport.close() });
}

/**
 * A typed client for Herald's gRPC listener:
 *
 *   const herald = createHeraldClient({ address: "127.0.0.1:50051", apiKey });
 *   const { notification } = await herald.create({ notification: { ... } });
 *
 * Errors are ConnectErrors with the gRPC status as `code`.
 */
export function createHeraldClient(opts: HeraldClientOptions): HeraldClient {
  return serviceClient(NotificationService, opts);
}

/**
 * A typed client for Herald's DeadLetterService (list, inspect, redrive), with
 * the same options as createHeraldClient:
 *
 *   const dlq = createDeadLetterClient({ address: "127.0.0.1:50051", apiKey });
 *   const { deadLetters } = await dlq.listDeadLetters({ filter: { channel: Channel.EMAIL } });
 */
export function createDeadLetterClient(opts: HeraldClientOptions): DeadLetterClient {
  return serviceClient(DeadLetterService, opts);
}

/** A typed client for Herald's TemplateService (put, get, list), with the same options. */
export function createTemplateClient(opts: HeraldClientOptions): TemplateClient {
  return serviceClient(TemplateService, opts);
}

/**
 * A typed client for Herald's OperationsService (the deployment-wide overview `herald status`
 * shows), with the same options; any valid API key may call it.
 */
export function createOperationsClient(opts: HeraldClientOptions): OperationsClient {
  return serviceClient(OperationsService, opts);
}

/**
 * A typed client for Herald's SuppressionService (list, add, remove the tenant's suppressed
 * addresses), with the same options as createHeraldClient.
 */
export function createSuppressionClient(opts: HeraldClientOptions): SuppressionClient {
  return serviceClient(SuppressionService, opts);
}

/**
 * A typed client for Herald's RecipientService (put, get, delete, list the tenant's recipient
 * profiles), with the same options as createHeraldClient.
 */
export function createRecipientClient(opts: HeraldClientOptions): RecipientClient {
  return serviceClient(RecipientService, opts);
}
