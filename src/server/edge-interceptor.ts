import type { Interceptor } from "@connectrpc/connect";
import type { Edge } from "./edge.js";

// The edge as a Connect interceptor: what the HTTP listener mounts (and the handler tests
// mount over createRouterTransport), so both run the very same admit and classify.

/** Runs the edge for Connect-served calls, including errors thrown mid-stream. */
export function edgeInterceptor(edge: Edge): Interceptor {
  return (next) => async (req) => {
    try {
      edge.admit(req.method, req.header, req.contextValues);
      const res = await next(req);
      if (!res.stream) return res;
      const message = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* message;
          } catch (err) {
            throw edge.classify(err, req.method, req.contextValues);
          }
        })(),
      };
    } catch (err) {
      throw edge.classify(err, req.method, req.contextValues);
    }
  };
}
