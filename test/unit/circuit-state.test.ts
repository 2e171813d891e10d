import { describe, expect, it } from "vitest";
import { admit, closedState, record } from "../../src/workers/providers/circuit/state.js";

// The breaker's state machine with time passed in: the in-memory fallback runs it as it is, and
// the Redis script (shared.ts) is the same machine (test/providers/failover.test.ts drives that one).

const config = { failures: 3, windowMs: 1000, cooldownMs: 500, probeLeaseMs: 2000 };

describe("circuit breaker state", () => {
  it("opens on the Nth transient failure within the window; failures spread wider do not open it", () => {
    const s = closedState();
    expect(record(s, false, false, 0, config)).toBe("closed");
    expect(record(s, false, false, 900, config)).toBe("closed");
    // The window (from the first failure counted) has ended: counting starts again.
    expect(record(s, false, false, 1000, config)).toBe("closed");
    expect(record(s, false, false, 1100, config)).toBe("closed");
    expect(record(s, true, false, 1150, config)).toBe("closed");
    expect(record(s, false, false, 1200, config)).toBe("open");
    expect(admit(s, 1600, config)).toEqual({ allowed: false, probe: false, state: "open", retryInMs: 100 });
  });

  it("after the cooldown lets exactly one probe through; its answer closes or reopens the breaker", () => {
    const s = closedState();
    for (let i = 0; i < 3; i++) record(s, false, false, 0, config);
    expect(admit(s, 500, config)).toEqual({ allowed: true, probe: true, state: "half_open", retryInMs: 0 });
    expect(admit(s, 501, config)).toEqual({ allowed: false, probe: false, state: "half_open", retryInMs: 1999 });
    // A send admitted before the breaker opened decides nothing now.
    expect(record(s, true, false, 600, config)).toBe("half_open");
    expect(record(s, false, true, 700, config)).toBe("open");
    expect(admit(s, 1100, config).allowed).toBe(false);
    expect(admit(s, 1200, config).probe).toBe(true);
    expect(record(s, true, true, 1300, config)).toBe("closed");
    expect(admit(s, 1301, config)).toEqual({ allowed: true, probe: false, state: "closed", retryInMs: 0 });
  });

  it("a probe that never reports is presumed lost after its lease: the next send probes", () => {
    const s = closedState();
    for (let i = 0; i < 3; i++) record(s, false, false, 0, config);
    expect(admit(s, 500, config).probe).toBe(true);
    expect(admit(s, 2499, config).allowed).toBe(false);
    expect(admit(s, 2500, config)).toMatchObject({ allowed: true, probe: true });
  });
});
