import { readFileSync } from "node:fs";

// Readers of environment variables, shared by every part of the configuration
// (config.ts, config-delivery.ts). Each names the variable in its error, so a
// bad value stops the process with a message saying what to fix.

export type Mode = "dev" | "production";

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function int(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}: expected an integer in [${min}, ${max}], got "${raw}"`);
  }
  return n;
}

export function fraction(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!(n > 0 && n <= 1)) throw new ConfigError(`${name}: expected a number in (0, 1], got "${raw}"`);
  return n;
}

export function list(env: Env, name: string, fallback: string[] = []): string[] {
  const raw = env[name];
  if (raw === undefined) return fallback;
  return raw.split(",").map((s) => s.trim()).filter(Boolean);
}

export interface HostPort {
  host: string;
  port: number;
}

export function hostPort(env: Env, name: string, fallback: string): HostPort {
  const raw = env[name] ?? fallback;
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(raw);
  if (!m) throw new ConfigError(`${name}: expected host:port, got "${raw}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${name}: port ${port} out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

export function url(env: Env, name: string, fallback: string): string {
  const raw = env[name] ?? fallback;
  try {
    const u = new URL(raw);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
    return raw.replace(/\/+$/, "");
  } catch {
    throw new ConfigError(`${name}: expected an http(s) URL, got "${raw}"`);
  }
}

/** The contents of a file named by a variable; the error names the variable, not the contents. */
export function fileText(name: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** VAR, or the contents of the file named by VAR_FILE (trailing newline trimmed). */
export function secret(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return fileText(`${name}_FILE`, file).replace(/\r?\n$/, "");
  return env[name] || undefined;
}

export function required(env: Env, name: string, why: string): string {
  const v = secret(env, name);
  if (!v) throw new ConfigError(`${name} is required ${why}`);
  return v;
}
