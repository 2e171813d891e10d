import { startProbe, type ProbeResult } from "./probe.js";
import { Tally, type AttackCount } from "./tally.js";
import { startTarget } from "./target.js";
import { ATTACKS, socketFloods, type Attack } from "./attacks.js";

// The hostile-input suite (issue 13): a Herald of its own, a probe client creating beside it,
// every attack in turn, then the verdict: 0 INTERNAL, 0 hangs, 0 crashes, every outcome one the
// attack accepts, the probe answered throughout, and the server's memory back near its warm level.

export interface HostileOptions {
  /** 1: the full suite; smaller: fewer sockets and smaller bombs (the CI form). */
  scale: number;
  /** How long a flood's sockets get before the server must have closed them. */
  floodWaitMs: number;
  log: (line: string) => void;
}

export interface HostileResult {
  attacks: Record<string, AttackCount>;
  internal: number;
  hangs: number;
  crashed: boolean;
  probe: { calls: number; ok: number; failed: Record<string, number>; p50Ms: number; p99Ms: number; maxMs: number };
  rssMiB: { warm: number; peak: number; after: number };
  passed: boolean;
}

export async function runHostile(opts: HostileOptions): Promise<HostileResult> {
  const target = await startTarget();
  const tally = new Tally();
  let peak = 0;
  const sampler = setInterval(() => {
    if (target.serverAlive()) peak = Math.max(peak, target.serverRssMiB());
  }, 250);
  try {
    // Warm: a few hundred ordinary calls, so "warm RSS" is a server that has worked.
    const warmProbe = startProbe({ address: target.site.grpcAddress, apiKey: target.site.apiKey, everyMs: 10 });
    await new Promise((r) => setTimeout(r, 3000));
    await warmProbe.stop();
    const warm = target.serverRssMiB();
    const probe = startProbe({ address: target.site.grpcAddress, apiKey: target.site.apiKey });
    const attacks: Attack[] = [...ATTACKS, ...socketFloods(opts.floodWaitMs)];
    for (const attack of attacks) {
      if (!target.serverAlive()) break;
      opts.log(`attack: ${attack.name}`);
      await attack.run({ target, tally, scale: opts.scale, log: opts.log });
    }
    const probed = await probe.stop();
    // Memory after the floods: give the server a moment to free what the floods held.
    await new Promise((r) => setTimeout(r, 5000));
    const after = target.serverAlive() ? target.serverRssMiB() : 0;
    const crashed = !target.serverAlive();
    const internal = tally.total("INTERNAL");
    const hangs = tally.total("HANG") + (probed.failed.DeadlineExceeded ?? 0);
    const result: HostileResult = {
      attacks: Object.fromEntries(tally.attacks),
      internal,
      hangs,
      crashed,
      probe: summary(probed),
      rssMiB: { warm: round(warm), peak: round(peak), after: round(after) },
      passed: !crashed && internal === 0 && hangs === 0 && tally.failures() === 0 && probed.ok === probed.calls,
    };
    return result;
  } finally {
    clearInterval(sampler);
    await target.stop();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

function summary(p: ProbeResult): HostileResult["probe"] {
  const sorted = [...p.latenciesMs].sort((a, b) => a - b);
  const q = (f: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? 0);
  return { calls: p.calls, ok: p.ok, failed: p.failed, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: round(sorted.at(-1) ?? 0) };
}
