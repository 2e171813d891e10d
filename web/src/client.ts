import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { RecipientService } from "../../gen/herald/v1/recipient_pb.js";

export type NotificationClient = Client<typeof NotificationService>;
export type DeadLetterClient = Client<typeof DeadLetterService>;
export type OperationsClient = Client<typeof OperationsService>;
export type RecipientClient = Client<typeof RecipientService>;

/** The page's clients, one per service, over one transport. */
export interface Clients {
  notifications: NotificationClient;
  deadLetters: DeadLetterClient;
  operations: OperationsClient;
  recipients: RecipientClient;
}

/** Every call carries the API key the way the server's edge expects it. */
function bearer(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/**
 * Connect clients of the server that served this page. The Connect protocol
 * over fetch (HTTP/1.1) is what a browser can speak; the same listener serves it.
 */
export function heraldClients(baseUrl: string, apiKey: string): Clients {
  const transport: Transport = createConnectTransport({ baseUrl, interceptors: [bearer(apiKey)] });
  return {
    notifications: createClient(NotificationService, transport),
    deadLetters: createClient(DeadLetterService, transport),
    operations: createClient(OperationsService, transport),
    recipients: createClient(RecipientService, transport),
  };
}
