import type * as grpc from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";

// grpc-js reports a call cut by its connection, not answered by the server, as INTERNAL: a
// server's GOAWAY with an error code (nghttp2's rapid-reset limit, a proxy going away) destroys
// the session and every call on it ends "Received RST_STREAM with code 2 ... Session closed with
// error code 2". The server never answered those calls, so the honest code is UNAVAILABLE, which
// clients retry (a Create with an idempotency key safely); a server's own INTERNAL answer comes
// with its status and keeps its code.

/** grpc-js's wording for a stream that ended without a status from the server. */
const TRANSPORT_CUT = /^Received RST_STREAM with code \d+|Session closed with error code|GOAWAY/;

/** grpc-js metadata as Headers (text values only). */
export function headersFrom(md: grpc.Metadata | undefined): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(md?.getMap() ?? {})) if (typeof v === "string") h.append(k, v);
  return h;
}

/** A grpc-js call error as the ConnectError a Herald client reports. */
export function toConnectError(err: grpc.ServiceError | Error): ConnectError {
  const raw: unknown = (err as grpc.ServiceError).code;
  if (typeof raw !== "number") return ConnectError.from(err);
  // grpc-js status numbers are the gRPC codes, which Connect's Code enumerates.
  const code = raw as Code;
  const details = (err as grpc.ServiceError).details ?? err.message;
  const metadata = headersFrom((err as grpc.ServiceError).metadata);
  if (code === Code.Internal && TRANSPORT_CUT.test(details)) {
    return new ConnectError(`connection lost before the server answered (${details}); retry`, Code.Unavailable, metadata, undefined, err);
  }
  return new ConnectError(details, code, metadata);
}
