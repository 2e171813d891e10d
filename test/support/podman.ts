import { REPO, runCommand, type RunResult } from "./processes.js";

// Podman as the container tests drive it: every call with the containers.conf scripts/image.sh
// writes (runc, ulimits), so the tests run containers exactly as the script and the README do.

export const IMAGE = process.env.HERALD_IMAGE ?? "localhost/herald:dev";

let conf: string | undefined;

/** `bash scripts/image.sh <args>` to its end; throws with its output if it fails. */
export async function imageScript(args: string[], timeoutMs: number): Promise<RunResult> {
  const r = await runCommand("bash", [`${REPO}/scripts/image.sh`, ...args], { timeoutMs, name: `image.sh ${args.join(" ")}` });
  if (r.code !== 0) throw new Error(`scripts/image.sh ${args.join(" ")} exited ${r.code} (timed out: ${r.timedOut})\n${r.stderr.slice(-4000)}`);
  return r;
}

/** The containers.conf podman is pointed at (CONTAINERS_CONF). */
export async function containersConf(): Promise<string> {
  conf ??= (await imageScript(["conf"], 30_000)).stdout.trim();
  return conf;
}

/** `podman <args>` to its end, with the project's containers.conf. */
export async function podman(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return runCommand("podman", args, { env: { CONTAINERS_CONF: await containersConf() }, timeoutMs, name: `podman ${args[0] ?? ""}` });
}

/** `podman <args>` that must succeed: its stdout, trimmed. */
export async function podmanOk(args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${r.code} (timed out: ${r.timedOut})\n${r.stderr.slice(-3000)}`);
  return r.stdout.trim();
}

/** A container's state as `podman inspect` reports it. */
export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  OOMKilled: boolean;
}

export async function containerState(name: string): Promise<ContainerState> {
  return JSON.parse(await podmanOk(["inspect", "--format", "{{json .State}}", name])) as ContainerState;
}
