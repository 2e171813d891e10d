import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

// Small helpers for tests that call Herald's services through Connect clients.

/** Sends `authorization: Bearer <apiKey>` on every call (a Connect transport's interceptor). */
export function bearer(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/** The code name and message a call failed with; throws when it succeeded. */
export async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => {
      const err = ConnectError.from(e);
      return { code: Code[err.code], message: err.rawMessage };
    },
  );
}
