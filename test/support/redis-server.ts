import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { freePorts, spawnCommand, type ChildHandle } from "./processes.js";

// A redis-server of its own on a free port, for a test that stops Redis: the shared one on 6379
// serves every other test. Nothing is persisted (`--save '' --appendonly no`): a restart comes
// back empty, as a cache node replaced after a crash does, and the rate limiter's slots start
// again from nothing.

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? "/usr/bin/redis-server";

export interface PrivateRedis {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Stops the server (SIGTERM; SIGKILL after 10 s). Idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers PING. */
  start(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const [port] = await freePorts(1);
  let child: ChildHandle | undefined;
  const redis: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port: port!,
    async stop() {
      await child?.stop("SIGTERM", 10_000);
      child = undefined;
    },
    async start() {
      if (child && !child.exit()) return;
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
      const started = spawnCommand(`redis-server:${port}`, REDIS_SERVER, args);
      child = started;
      await answersPing(port!, started);
    },
  };
  await redis.start();
  return redis;
}

/** Resolves once the server answers PING; rejects if it exits first or takes over 30 s. */
async function answersPing(port: number, child: ChildHandle): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exit()) throw new Error(`redis-server on ${port} exited: ${child.stderr() || child.stdout()}`);
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING within 30 s`);
    await sleep(50);
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d) => done(d.toString().startsWith("+PONG")));
  });
}
