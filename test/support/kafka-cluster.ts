import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePorts, REPO } from "./processes.js";

// A 3-broker KRaft cluster of its own (scripts/kafka-cluster.sh) for a test that loses a broker,
// on free ports and in a temporary folder, so the shared broker on 9092 and other tests are
// not disturbed. Replication 3 and min.insync.replicas 2 by default, as a production cluster.

const run = promisify(execFile);
const SCRIPT = join(REPO, "scripts/kafka-cluster.sh");

export interface KafkaCluster {
  brokers: string[];
  /** SIGKILLs node 1, 2 or 3 (a crash: no controlled shutdown). */
  kill(node: 1 | 2 | 3): Promise<void>;
  /** The node (1-3) whose client port is `port`. */
  nodeOf(port: number): 1 | 2 | 3;
  /** Stops every node and deletes the folder. */
  destroy(): Promise<void>;
}

export async function startKafkaCluster(): Promise<KafkaCluster> {
  const dir = await mkdtemp(join(tmpdir(), "herald-kafka-cluster-"));
  const ports = await freePorts(6);
  const clientPorts = ports.slice(0, 3);
  const env = {
    ...process.env,
    KAFKA_CLUSTER_DIR: dir,
    KAFKA_CLUSTER_PORTS: clientPorts.join(","),
    KAFKA_CLUSTER_CONTROLLER_PORTS: ports.slice(3).join(","),
    KAFKA_STOP_TIMEOUT: "20",
    // Three brokers start at once on a busy 2-core machine.
    KAFKA_START_TIMEOUT: "150",
  };
  const script = async (...args: string[]) => {
    try {
      await run("bash", [SCRIPT, ...args], { env, timeout: 240_000 });
    } catch (err) {
      const { stderr } = err as { stderr?: string };
      throw new Error(`kafka-cluster.sh ${args.join(" ")} (dir ${dir}) failed: ${stderr ?? String(err)}`, { cause: err });
    }
  };
  const cluster: KafkaCluster = {
    brokers: clientPorts.map((p) => `127.0.0.1:${p}`),
    kill: (node) => script("kill-node", String(node)),
    nodeOf(port) {
      const i = clientPorts.indexOf(port);
      if (i < 0) throw new Error(`port ${port} is not one of the cluster's (${clientPorts.join(", ")})`);
      return (i + 1) as 1 | 2 | 3;
    },
    async destroy() {
      await script("stop").catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await script("start");
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
