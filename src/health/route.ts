import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

// A plain-HTTP route (the probes, the dashboard, later /metrics), served by the API's HTTP
// listener (HTTP/1.1 and h2c) and by the health port of every role (HTTP/1.1): one shape, so a
// route written once can be mounted on either.

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** Handles the request and returns true, or returns false to let the next route have it. */
export type HttpRoute = (req: NodeRequest, res: NodeResponse) => boolean;
