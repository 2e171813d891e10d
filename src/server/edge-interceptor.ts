import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { overloaded, REQUEST_ID_HEADER, requestIdOf, type Edge } from "./edge.js";
import type { Admission } from "./admission.js";
import { callKey, requestIdKey } from "./call-info.js";
import { OK, type RpcObserver } from "./rpc-observer.js";

// The edge as a Connect interceptor: what the HTTP listener mounts (and the handler tests
// mount over createRouterTransport), so both run the very same admit and classify. It is also
// where a Connect-served call is seen to finish, once, with the code its client saw: refused
// at the door, unauthenticated, answered, failed mid-stream, or left by its client.

export interface EdgeInterceptorOptions {
  /** Counts, times and logs every finished call (rpc-observer.ts). */
  observer?: RpcObserver;
  /** Refuses calls of `methods` ("Service/Method") at the door under overload, before the edge (admission.ts). */
  admission?: { gate: Admission; methods: ReadonlySet<string> };
}

/** Runs the edge for Connect-served calls, including errors thrown mid-stream. */
export function edgeInterceptor(edge: Edge, opts: EdgeInterceptorOptions = {}): Interceptor {
  const { observer, admission } = opts;
  const gated = new Map<DescMethod, boolean>();
  const isGated = (method: DescMethod): boolean => {
    let is = gated.get(method);
    if (is === undefined) gated.set(method, (is = admission?.methods.has(`${method.parent.typeName}/${method.name}`) ?? false));
    return is;
  };

  return (next) => async (req) => {
    const started = performance.now();
    const values = req.contextValues;
    // The HTTP listener fixed the id as the request arrived and sent it back; the router did not.
    let requestId = values.get(requestIdKey);
    if (requestId === undefined) values.set(requestIdKey, (requestId = requestIdOf(req.header.get(REQUEST_ID_HEADER))));
    const observed = observer?.of(req.method);

    if (isGated(req.method)) {
      // connect-node has parsed the request's timeout into the handler's context, not here: the
      // lag and the queue's length decide, the deadline check comes again in the store.
      const retryAfterMs = admission!.gate.refuse(undefined);
      if (retryAfterMs !== undefined) {
        observed?.finished(Code.ResourceExhausted, started, requestId, undefined);
        throw overloaded(retryAfterMs);
      }
    }
    try {
      edge.admit(req.method, req.header, values);
      const res = await next(req);
      if (!res.stream) {
        // Answered, unless the client left or the deadline passed meanwhile: it saw that instead.
        observed?.finished(req.signal.aborted ? abortCode(req.signal.reason) : OK, started, requestId, values.get(callKey)?.tenant);
        return res;
      }
      const message = res.message;
      return {
        ...res,
        message: (async function* () {
          // Until the stream ends by itself or fails: connect stops reading when the client leaves.
          let code: number = Code.Canceled;
          try {
            yield* message;
            code = req.signal.aborted ? abortCode(req.signal.reason) : OK;
          } catch (err) {
            const answer = edge.classify(err, req.method, values);
            code = answer.code;
            throw answer;
          } finally {
            observed?.finished(code, started, requestId, values.get(callKey)?.tenant);
          }
        })(),
      };
    } catch (err) {
      const answer = edge.classify(err, req.method, values);
      observed?.finished(answer.code, started, requestId, values.get(callKey)?.tenant);
      throw answer;
    }
  };
}

/** A call whose signal aborted before its answer: its deadline's, or its client's (or the server's shutdown). */
function abortCode(reason: unknown): number {
  return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded ? Code.DeadlineExceeded : Code.Canceled;
}
