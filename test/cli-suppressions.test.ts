import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { runCli } from "./support/processes.js";

// `herald suppressions` as an operator runs it: the built CLI (dist/, `npm run build`) against a
// running API. What is asserted is what the operator reads and the exit codes: 0 done, 1 the
// server refused (the message is the server's), 2 bad usage (with the usage text).

describe("herald suppressions (built CLI)", { timeout: 120_000 }, () => {
  let h: TestHerald;
  const flags = () => ["--addr", h.grpcAddress, "--api-key", KEY_A];

  beforeAll(async () => {
    h = await startTestHerald({ roles: ["server"] });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("adds, lists and removes an address", async () => {
    const add = await runCli(["suppressions", "add", "--channel", "email", "--address", "Grace@Example.com", "--note", "asked us to stop", ...flags()]);
    expect(add, add.stderr).toMatchObject({ code: 0, timedOut: false, stderr: "suppressed\n" });
    const list = await runCli(["suppressions", "list", ...flags()]);
    expect(list, list.stderr).toMatchObject({ code: 0 });
    const [header, row, ...rest] = list.stdout.trimEnd().split("\n").map((l) => l.split(/ {2,}/));
    expect(header).toEqual(["SINCE", "CHANNEL", "ADDRESS", "REASON", "DETAIL", "NOTIFICATION"]);
    expect(row?.slice(1)).toEqual(["email", "grace@example.com", "manual", "asked us to stop"]);
    expect(rest).toEqual([]);
    const remove = await runCli(["suppressions", "remove", "--channel", "email", "--address", "grace@example.com", ...flags()]);
    expect(remove).toMatchObject({ code: 0, stderr: "removed: sends to this address go through again\n" });
    const empty = await runCli(["suppressions", "list", "--channel", "email", ...flags()]);
    expect(empty).toMatchObject({ code: 0, stdout: "", stderr: "no suppressions\n" });
  });

  it("exits 1 with the server's message when refused, 2 with the usage on bad usage", async () => {
    const missing = await runCli(["suppressions", "remove", "--channel", "sms", "--address", "+14155550100", ...flags()]);
    expect(missing).toMatchObject({ code: 1, stderr: 'herald: [not_found] no suppression of "+14155550100" on CHANNEL_SMS\n' });
    const invalid = await runCli(["suppressions", "add", "--channel", "sms", "--address", "555-0100", ...flags()]);
    expect(invalid).toMatchObject({ code: 1, stderr: "herald: [invalid_argument] address: must be an E.164 number like +14155550100\n" });
    const usage = await runCli(["suppressions", "add", "--address", "a@example.com", ...flags()]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("herald: --channel is required: email, sms, push or webhook");
    expect(usage.stderr).toContain("herald suppressions add --channel email --address ada@example.com [--note TEXT]");
  });
});
