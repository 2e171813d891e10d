import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePorts, REPO } from "./processes.js";

// A Kafka broker of its own for a test that stops and restarts Kafka, so tests using the shared
// broker on 9092 in parallel are not disturbed. It runs scripts/kafka.sh with its own KAFKA_DIR
// and free ports.

const run = promisify(execFile);
const SCRIPT = join(REPO, "scripts/kafka.sh");
const SHARED_LIB = join(REPO, ".kafka/lib");

export interface PrivateBroker {
  brokers: string[];
  /** Stops the broker (SIGTERM, bounded); its data stays. */
  stop(): Promise<void>;
  /** Starts it again (or the first time) and waits until it serves clients. */
  start(): Promise<void>;
  /** Stops it and deletes its folder. */
  destroy(): Promise<void>;
}

export async function startPrivateBroker(): Promise<PrivateBroker> {
  const dir = await mkdtemp(join(tmpdir(), "herald-kafka-"));
  // kafka.sh has no option to share jars, but it only refetches when lib/.pom.sha256 differs
  // from the pom, so a link to the main checkout's lib saves 43 MB and a Maven run per broker.
  // (Were the pom newer, kafka.sh would replace the link, not the shared folder.)
  if (existsSync(join(SHARED_LIB, ".pom.sha256"))) await symlink(SHARED_LIB, join(dir, "lib"), "dir");
  else await mkdir(join(dir, "lib"));
  const [port, controllerPort] = await freePorts(2);
  const env = {
    ...process.env,
    KAFKA_DIR: dir,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(controllerPort),
    // Never stop someone else's broker that happens to sit on these ports.
    KAFKA_TAKEOVER: "0",
    KAFKA_HEAP_OPTS: "-Xms256m -Xmx256m",
    KAFKA_STOP_TIMEOUT: "20",
  };
  const kafkaSh = async (command: string) => {
    try {
      await run("bash", [SCRIPT, command], { env, timeout: 180_000 });
    } catch (err) {
      const { stderr } = err as { stderr?: string };
      throw new Error(`kafka.sh ${command} (KAFKA_DIR=${dir}) failed: ${stderr ?? String(err)}`, { cause: err });
    }
  };
  const broker: PrivateBroker = {
    brokers: [`127.0.0.1:${port}`],
    start: () => kafkaSh("start"),
    stop: () => kafkaSh("stop"),
    async destroy() {
      await kafkaSh("stop").catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await broker.start();
  } catch (err) {
    await broker.destroy();
    throw err;
  }
  return broker;
}
