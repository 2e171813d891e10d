import { parseArgs } from "node:util";
import { loadConfig } from "../config.js";
import { configLines, redactedConfig } from "../config-redact.js";
import { describeUnknown, unknownVariables } from "../config-vars.js";
import { UsageError } from "./usage-error.js";

// `herald config`: the configuration a role would run with, parsed from this
// environment with the defaults filled in and the secrets redacted, so an
// operator can check what a deployment really uses without reading its secrets.

export const configUsage = `  herald config [--dev] [--text] prints the effective configuration (JSON, or aligned --text),
                                 secrets redacted; --dev: as \`herald dev\` would run`;

export function runConfigCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  io: { out: { write(s: string): unknown }; err: { write(s: string): unknown } },
): void {
  const { values, positionals } = parseArgs({
    args,
    options: { dev: { type: "boolean", default: false }, text: { type: "boolean", default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new UsageError(`herald config takes no arguments, got "${positionals[0]}"`);
  for (const u of unknownVariables(env)) io.err.write(`herald: ${describeUnknown(u)}\n`);
  const shown = redactedConfig(loadConfig(env, values.dev ? "dev" : "production"));
  io.out.write(values.text ? `${configLines(shown).join("\n")}\n` : `${JSON.stringify(shown, null, 2)}\n`);
}
