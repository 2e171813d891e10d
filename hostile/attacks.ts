import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { DeadLetterService } from "../gen/herald/v1/dead_letter_pb.js";
import { NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../gen/herald/v1/template_pb.js";
import { Code, ConnectError, createDeadLetterClient, createHeraldClient, createTemplateClient } from "../src/client/index.js";
import type { Tally } from "./tally.js";
import type { Target } from "./target.js";
import { connectStream, connectUnary, frame, grpcCall, grpcWeb, type Outcome } from "./wire.js";

// The attacks, one function each, every request's outcome tallied against what that attack
// accepts. Sizes come from `scale` (1 for the full suite, less for the CI form).

export interface AttackContext {
  target: Target;
  tally: Tally;
  scale: number;
  log: (line: string) => void;
}

export interface Attack {
  name: string;
  run(ctx: AttackContext): Promise<void>;
}

const SERVICES: DescService[] = [NotificationService, TemplateService, DeadLetterService, Health];
const methodsOf = () => SERVICES.flatMap((s) => s.methods.map((m) => ({ path: `/${s.typeName}/${m.name}`, streaming: m.methodKind === "server_streaming", health: s === Health })));

/** Bytes that do not parse as any of our messages. */
const GARBAGE: Array<[string, Buffer]> = [
  ["truncated field", Buffer.from([0x0a, 0x05, 0x61])],
  ["bad wire type", Buffer.from([0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f])],
  ["random bytes", randomBytes(64)],
];

const codeName = (err: unknown): Outcome => {
  const c = ConnectError.from(err).code;
  return (Code[c] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
};

/** Runs `count` sends `parallel` at a time. */
async function pool(count: number, parallel: number, send: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await send(next++);
  }));
}

export const malformedProtobuf: Attack = {
  name: "malformed protobuf, every RPC, both listeners",
  async run({ target, tally }) {
    const { site } = target;
    for (const m of methodsOf()) {
      for (const [kind, bytes] of GARBAGE) {
        for (const keyed of [true, false]) {
          const auth: Record<string, string> = keyed ? { authorization: `Bearer ${site.apiKey}` } : {};
          // With a key the message is at fault; without one a listener may say either.
          const accepted = keyed || m.health ? ["INVALID_ARGUMENT"] : ["UNAUTHENTICATED", "INVALID_ARGUMENT"];
          const what = `${m.path} ${kind}${keyed ? "" : " (no key)"}`;
          tally.record("malformed protobuf", await grpcCall({ address: site.grpcAddress, path: m.path, body: frame(bytes), headers: auth }), accepted, `grpc ${what}`);
          tally.record("malformed protobuf", await grpcCall({ address: `127.0.0.1:${site.httpPort}`, path: m.path, body: frame(bytes), headers: auth }), accepted, `h2c grpc ${what}`);
          tally.record("malformed protobuf", await grpcWeb({ url: site.httpUrl, path: m.path, body: frame(bytes), headers: auth }), accepted, `grpc-web ${what}`);
          const connect = m.streaming
            ? await connectStream({ url: site.httpUrl, path: m.path, body: frame(bytes), headers: auth })
            : await connectUnary({ url: site.httpUrl, path: m.path, body: bytes, contentType: "application/proto", headers: auth });
          tally.record("malformed protobuf", connect, accepted, `connect ${what}`);
        }
      }
    }
  },
};

export const loneSurrogates: Attack = {
  name: "lone surrogates in JSON",
  async run({ target, tally }) {
    const { site } = target;
    const auth = { authorization: `Bearer ${site.apiKey}` };
    const json = '{"id":"\\ud800"}';
    const body = Buffer.from(json);
    const path = "/herald.v1.NotificationService/Get";
    const accepted = ["INVALID_ARGUMENT", "NOT_FOUND"];
    tally.record("lone surrogate", await connectUnary({ url: site.httpUrl, path, body: json, contentType: "application/json", headers: auth }), accepted, "connect json Get");
    tally.record("lone surrogate", await grpcWeb({ url: site.httpUrl, path, body: frame(body), json: true, headers: auth }), accepted, "grpc-web json Get");
    tally.record("lone surrogate", await grpcCall({ address: `127.0.0.1:${site.httpPort}`, path, body: frame(body), headers: { ...auth, "content-type": "application/grpc+json" } }), accepted, "h2c grpc+json Get");
    // Where the surrogate is echoed back in an error: a field name, an idempotency key.
    const echoed = ['{"\\ud800":1}', '{"notification":{"channel":"CHANNEL_SMS"},"idempotencyKey":"\\ud800"}'];
    for (const e of echoed) {
      const create = "/herald.v1.NotificationService/Create";
      tally.record("lone surrogate", await connectUnary({ url: site.httpUrl, path: create, body: e, contentType: "application/json", headers: auth }), accepted, `connect json Create ${e}`);
      tally.record("lone surrogate", await grpcWeb({ url: site.httpUrl, path: create, body: frame(Buffer.from(e)), json: true, headers: auth }), accepted, `grpc-web json Create ${e}`);
      tally.record("lone surrogate", await grpcCall({ address: `127.0.0.1:${site.httpPort}`, path: create, body: frame(Buffer.from(e)), headers: { ...auth, "content-type": "application/grpc+json" } }), accepted, `h2c grpc+json Create ${e}`);
    }
    const watch = '{"notificationId":"\\udfff"}';
    tally.record("lone surrogate", await connectStream({ url: site.httpUrl, path: "/herald.v1.NotificationService/WatchStatus", body: frame(Buffer.from(watch)), json: true, headers: auth }), accepted, "connect json WatchStatus");
  },
};

export const oversized: Attack = {
  name: "50 MB bodies and compression bombs",
  async run({ target, tally, scale }) {
    const { site } = target;
    const auth = { authorization: `Bearer ${site.apiKey}` };
    const path = "/herald.v1.NotificationService/Create";
    const big = Buffer.alloc(50 * 1024 * 1024, 0x41);
    const accepted = ["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"];
    // grpc-js refuses a message over its limit while the client is still sending it: the
    // status can lose the race with the stream's reset, which refuses it just as well.
    tally.record("oversized", await grpcCall({ address: site.grpcAddress, path, body: frame(big), headers: auth, timeoutMs: 30_000 }), [...accepted, "RESET"], "grpc 50 MB");
    tally.record("oversized", await connectUnary({ url: site.httpUrl, path, body: big, contentType: "application/proto", headers: auth, timeoutMs: 30_000 }), accepted, "connect 50 MB");
    // A frame that claims 4 GiB and sends a little.
    tally.record("oversized", await grpcCall({ address: site.grpcAddress, path, body: frame(Buffer.alloc(16), 0, 0xffffffff), headers: auth }), [...accepted, "RESET"], "grpc 4 GiB length prefix");
    const bomb = gzipSync(Buffer.alloc(Math.round(256 * 1024 * 1024 * Math.min(1, scale * 2)), 0));
    tally.record("oversized", await connectUnary({ url: site.httpUrl, path, body: bomb, contentType: "application/proto", headers: { ...auth, "content-encoding": "gzip" }, timeoutMs: 30_000 }), accepted, `connect gzip bomb (${bomb.length} bytes)`);
    tally.record("oversized", await grpcCall({ address: site.grpcAddress, path, body: frame(bomb, 1), headers: { ...auth, "grpc-encoding": "gzip" }, timeoutMs: 30_000 }), accepted, "grpc gzip bomb");
  },
};

export const forgedTokens: Attack = {
  name: "forged page tokens and cursors",
  async run({ target, tally }) {
    const { site } = target;
    const opts = { address: site.grpcAddress, apiKey: site.apiKey };
    const templates = createTemplateClient(opts);
    const dlq = createDeadLetterClient(opts);
    const herald = createHeraldClient(opts);
    const tokens = ["zzz", "AAAA", Buffer.from(JSON.stringify({ v: 1, at: "99999999999999999999", id: "x" })).toString("base64url"), "-1", "h1.-1", "%00"];
    const cursors = ["h1.-1", "h1.zzzzzzzzzzzzzz", `h2.${"A".repeat(48)}`, `h2.${randomBytes(36).toString("base64url")}`, "h3.x", "\u0000"];
    const accepted = ["INVALID_ARGUMENT"];
    const outcome = async (call: Promise<unknown>) => call.then(() => "OK", codeName);
    try {
      for (const t of tokens) {
        tally.record("forged token", await outcome(templates.listTemplates({ pageToken: t })), accepted, `ListTemplates ${t}`);
        tally.record("forged token", await outcome(dlq.listDeadLetters({ pageToken: t })), accepted, `ListDeadLetters ${t}`);
      }
      for (const c of cursors) {
        const stream = (async () => {
          for await (const _ of herald.watchStatus({ after: c }, { timeoutMs: 10_000 })) return "OK";
          return "OK";
        })();
        tally.record("forged cursor", await outcome(stream), accepted, `WatchStatus after=${JSON.stringify(c)}`);
      }
    } finally {
      templates.close();
      dlq.close();
      herald.close();
    }
  },
};

export const ssrf: Attack = {
  name: "webhooks to internal addresses",
  async run({ target, tally }) {
    const { site, internalPort } = target;
    const herald = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
    const create = (url: string) =>
      herald.create({
        notification: {
          channel: Channel.WEBHOOK,
          recipient: { userId: "ssrf", address: { case: "webhookUrl", value: url } },
          body: { case: "content", value: { text: "x" } },
        },
      });
    try {
      const literals = ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost", "0.0.0.0", "169.254.169.254", "10.0.0.1", "[fd00::1]", "100.64.0.1"];
      for (const host of literals) {
        const url = `http://${host}:${internalPort}/hook`;
        tally.record("ssrf at accept", await create(url).then(() => "OK", codeName), ["INVALID_ARGUMENT"], url);
      }
      // Names that resolve to this machine only when the worker looks them up (/etc/hosts).
      for (const host of loopbackNames()) {
        const url = `http://${host}:${internalPort}/hook`;
        const answer = await create(url).then((r) => r.notification, (err: unknown) => codeName(err));
        if (typeof answer === "string") {
          tally.record("ssrf at connect", answer, ["INVALID_ARGUMENT"], url);
          continue;
        }
        // Accepted: it must end FAILED without reaching the listener.
        const deadline = Date.now() + 60_000;
        const terminal = new Set([Status.SENT, Status.DELIVERED, Status.FAILED, Status.DEAD_LETTERED, Status.CANCELED]);
        let got = await herald.get({ id: answer!.id });
        while (Date.now() < deadline && !terminal.has(got.notification?.status ?? Status.UNSPECIFIED)) {
          await new Promise((r) => setTimeout(r, 250));
          got = await herald.get({ id: answer!.id });
        }
        const n = got.notification;
        const failed = n?.status === Status.FAILED && n.lastError.includes("public addresses") ? "FAILED_BY_POLICY" : `STATUS_${Status[n?.status ?? 0]}`;
        tally.record("ssrf at connect", failed, ["FAILED_BY_POLICY"], url);
      }
      tally.record("ssrf reached the internal listener", target.internalHits() === 0 ? "NONE" : `HITS_${target.internalHits()}`, ["NONE"], "internal listener");
    } finally {
      herald.close();
    }
  },
};

/** Names /etc/hosts maps to a loopback address, besides localhost (refused at accept already). */
function loopbackNames(): string[] {
  const names = new Set<string>();
  for (const line of readFileSync("/etc/hosts", "utf8").split("\n")) {
    const [address, ...aliases] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (!address || !(address.startsWith("127.") || address === "::1")) continue;
    for (const a of aliases) if (a && a !== "localhost" && !a.endsWith(".localhost")) names.add(a);
  }
  return [...names].slice(0, 3);
}

export const hostileTemplates: Attack = {
  name: "nested and huge templates",
  async run({ target, tally, scale }) {
    const { site } = target;
    const templates = createTemplateClient({ address: site.grpcAddress, apiKey: site.apiKey });
    const put = (id: string, text: string) => templates.putTemplate({ templateId: id, content: { text } }).then(() => "OK", codeName);
    try {
      const nested = (n: number) => `{{lookup ${"(lookup ".repeat(n)}a 'b'${")".repeat(n)} 'c'}}`;
      for (const n of [40, 800, 3000]) tally.record("templates", await put(`nested-${n}`, nested(n)), ["INVALID_ARGUMENT"], `(lookup …) nested ${n}`);
      tally.record("templates", await put("blocks-200", "{{#if a}}".repeat(200) + "x" + "{{/if}}".repeat(200)), ["INVALID_ARGUMENT"], "{{#if}} nested 200");
      // Flat and large, in parallel: each legal or refused, and none may stall the probe.
      const flat = ("x".repeat(1500) + "{{a}}").repeat(160);
      const parallel = Math.max(1, Math.round(4 * scale));
      const answers = await Promise.all(Array.from({ length: parallel }, (_, i) => put(`flat-${i}`, flat)));
      for (const a of answers) tally.record("templates", a, ["OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"], "flat 240 KB, 160 expressions");
    } finally {
      templates.close();
    }
  },
};

/** Opens sockets that misbehave and counts how many the server has closed after `waitMs`. */
export function socketFlood(opts: { name: string; count: number; waitMs: number; port: (t: Target) => number; behave(s: Socket): void }): Attack {
  return {
    name: opts.name,
    async run({ target, tally, scale, log }) {
      const count = Math.max(10, Math.round(opts.count * scale));
      const sockets: Socket[] = [];
      const closed = new Set<Socket>();
      await pool(count, 50, async () => {
        const s = netConnect(opts.port(target), "127.0.0.1");
        s.on("error", () => closed.add(s));
        s.on("close", () => closed.add(s));
        await new Promise<void>((resolve) => {
          s.once("connect", () => resolve());
          s.once("close", () => resolve());
        });
        // Read and drop whatever comes (a GOAWAY, a 408): a paused socket would never see the
        // server's close behind it, and the question is whether the server let go.
        s.resume();
        opts.behave(s);
        sockets.push(s);
      });
      log(`${opts.name}: ${count} sockets open; waiting ${opts.waitMs / 1000} s for the server to close them`);
      const deadline = Date.now() + opts.waitMs;
      while (Date.now() < deadline && closed.size < sockets.length) await new Promise((r) => setTimeout(r, 500));
      for (const s of sockets) tally.record(opts.name, closed.has(s) ? "CLOSED_BY_SERVER" : "HELD", ["CLOSED_BY_SERVER"], `${opts.name} socket`);
      for (const s of sockets) s.destroy();
    },
  };
}

const dribble = (s: Socket, first: string) => {
  s.write(first);
  const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("X")), 2000);
  s.once("close", () => clearInterval(t));
};

export function socketFloods(waitMs: number): Attack[] {
  return [
    socketFlood({ name: "slow-loris HTTP/1.1 headers", count: 1000, waitMs, port: (t) => t.site.httpPort, behave: (s) => dribble(s, "POST /herald.v1.NotificationService/Get HTTP/1.1\r\nHost: x\r\nX-Slow: ") }),
    socketFlood({ name: "idle before the protocol sniff", count: 1000, waitMs, port: (t) => t.site.httpPort, behave: () => {} }),
    socketFlood({ name: "idle h2c session", count: 500, waitMs, port: (t) => t.site.httpPort, behave: (s) => s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00") }),
    socketFlood({ name: "idle gRPC connection", count: 500, waitMs, port: (t) => t.site.grpcPort, behave: () => {} }),
  ];
}

export const ATTACKS: Attack[] = [malformedProtobuf, loneSurrogates, oversized, forgedTokens, ssrf, hostileTemplates];
