import { expect } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";

/** Asserts that `fn` throws INVALID_ARGUMENT with exactly `<path>: <rule>`. */
export function expectInvalid(fn: () => unknown, path: string, rule: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  expect(err.code).toBe(Code.InvalidArgument);
  expect(err.rawMessage.startsWith(`${path}: `)).toBe(true);
  expect(err.rawMessage).toBe(`${path}: ${rule}`);
}
