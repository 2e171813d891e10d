import { describe, expect, it } from "vitest";
import { createAdmission } from "../../src/server/admission.js";
import { waitFor } from "../support/wait.js";

// The event-loop lag sampler wakes the process a hundred times a second, so it runs only while
// Creates come: it stops after a quiet spell and the next call starts it again, still able to
// see a standing lag.

/** Keeps this thread busy for `ms`: the lag the sampler is there to see. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("admission lag sampler", () => {
  it("stops without calls, starts again at the next one, and still refuses while the loop stays late", async () => {
    const admission = createAdmission({ maxLagMs: 20, queueRefusal: () => undefined });
    try {
      expect(admission.sampling()).toBe(false); // nothing asked yet: no timer
      expect(admission.refuse(undefined)).toBeUndefined();
      expect(admission.sampling()).toBe(true);
      await waitFor("the sampler to stop after a quiet spell", () => !admission.sampling());

      // A loop late by ~30 ms at every sample: refused once the whole window is late. A busy
      // machine only makes the loop later.
      let refused: number | undefined;
      for (let i = 0; i < 200 && refused === undefined; i++) {
        refused = admission.refuse(undefined);
        await new Promise((r) => setTimeout(r, 0));
        block(40);
      }
      expect(refused).toBeGreaterThan(20);
    } finally {
      admission.close();
    }
    expect(admission.sampling()).toBe(false);
  });

  it("takes no sampler at all with the lag check off", () => {
    const admission = createAdmission({ maxLagMs: 0, queueRefusal: () => 7 });
    expect(admission.refuse(undefined)).toBe(7);
    expect(admission.sampling()).toBe(false);
    admission.close();
  });
});
