import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";

export type NotificationClient = Client<typeof NotificationService>;

/** Every call carries the API key the way the server's edge expects it. */
function bearer(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/**
 * A Connect client of the server that served this page. The Connect protocol
 * over fetch (HTTP/1.1) is what a browser can speak; the same listener serves it.
 */
export function notificationClient(baseUrl: string, apiKey: string): NotificationClient {
  const transport = createConnectTransport({ baseUrl, interceptors: [bearer(apiKey)] });
  return createClient(NotificationService, transport);
}
