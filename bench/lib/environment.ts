import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { cpus, hostname, release, totalmem, type as osType } from "node:os";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";

// What a reader needs to compare two runs: the machine, and the exact version of every
// component in the measured path. A version that cannot be read is "unknown (why)", never
// a guess, and never a reason to fail the run.

export interface Machine {
  /** Short stable name, used in result file names: BENCH_MACHINE or the host name. */
  name: string;
  cores: number;
  cpu: string;
  memoryGiB: number;
  os: string;
}

export type Versions = Record<string, string>;

export function machine(): Machine {
  const name = (process.env.BENCH_MACHINE ?? hostname().split(".")[0] ?? "machine").toLowerCase().replace(/[^a-z0-9-]+/g, "-");
  return {
    name,
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${osType()} ${release()}`,
  };
}

const run = (file: string, args: string[], cwd?: string) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { cwd, timeout: 10_000 }, (err, out, errOut) => {
      if (err) reject(new Error(err.message));
      else resolve(`${out}${errOut}`.trim());
    }),
  );

const unknown = (err: unknown) => `unknown (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;

async function attempt(read: () => Promise<string>): Promise<string> {
  try {
    return await read();
  } catch (err) {
    return unknown(err);
  }
}

/** The version of each npm package as installed (the lock's resolution), or absent. */
async function npmVersions(root: URL, names: string[]): Promise<Versions> {
  const lock = JSON.parse(await readFile(new URL("package-lock.json", root), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  const out: Versions = {};
  for (const name of names) {
    const v = lock.packages[`node_modules/${name}`]?.version;
    if (v) out[name] = v;
  }
  return out;
}

/**
 * The running broker's version: the broker started by scripts/kafka.sh is a java process
 * whose class path is a lib/ folder of Maven jars (kafka_2.13-X.jar or kafka-server-X.jar);
 * else the version scripts/kafka/pom.xml pins.
 */
async function kafkaVersion(root: URL): Promise<string> {
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmd.includes("-Dherald.kafka=1")) continue;
    const args = cmd.split("\0");
    const cp = args[args.indexOf("-cp") + 1]?.replace(/\/\*$/, "");
    if (!cp) continue;
    const jars = await readdir(cp).catch(() => [] as string[]);
    const jar = jars.map((j) => /^kafka(?:_[\d.]+|-server)-([\d.]+)\.jar$/.exec(j)?.[1]).find(Boolean);
    if (jar) return `${jar} (running broker, ${cp})`;
  }
  const pom = await readFile(new URL("scripts/kafka/pom.xml", root), "utf8");
  const v = /<kafka\.version>([^<]+)</.exec(pom)?.[1];
  return v ? `${v} (scripts/kafka/pom.xml)` : "unknown";
}

/** The cluster as the admin API describes it: proves the measured broker is the one answering. */
async function kafkaCluster(brokers: string[]): Promise<string> {
  const admin = new Kafka({ brokers, clientId: "herald-bench", logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    return `${cluster.brokers.length} broker(s), controller ${cluster.controller}`;
  } finally {
    await admin.disconnect();
  }
}

export async function versions(root: URL): Promise<Versions> {
  const pgUrl = `${process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432"}/postgres`;
  const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
  const out: Versions = { node: process.version };
  out.postgresql = await attempt(async () => {
    const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query<{ server_version: string }>("SHOW server_version")).rows[0]!.server_version;
    } finally {
      await client.end();
    }
  });
  out.kafka = await attempt(() => kafkaVersion(root));
  out["kafka cluster"] = await attempt(() => kafkaCluster(brokers));
  out.redis = await attempt(async () => {
    const info = await run("redis-cli", ["-h", process.env.REDIS_HOST ?? "127.0.0.1", "-p", process.env.REDIS_PORT ?? "6379", "INFO", "server"]);
    const v = /redis_version:(\S+)/.exec(info)?.[1];
    if (!v) throw new Error("no redis_version in INFO server");
    return v;
  });
  out.h2load = await attempt(async () => (await run(process.env.BENCH_H2LOAD ?? "/usr/bin/h2load", ["--version"])).replace(/^h2load\s+/, ""));
  Object.assign(
    out,
    await npmVersions(root, ["kafkajs", "@grpc/grpc-js", "@connectrpc/connect", "@connectrpc/connect-node", "@bufbuild/protobuf", "pg", "ioredis", "bullmq"]).catch(
      (err: unknown) => ({ npm: unknown(err) }),
    ),
  );
  return out;
}

/** The commit measured, with "+dirty" when the work tree has changes. */
export async function gitCommit(root: URL): Promise<string> {
  return attempt(async () => {
    const cwd = root.pathname;
    const head = await run("git", ["rev-parse", "HEAD"], cwd);
    const dirty = await run("git", ["status", "--porcelain", "--untracked-files=no"], cwd);
    return dirty ? `${head}+dirty` : head;
  });
}
