import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { createSuppressionLookups } from "../src/store/suppression-lookups.js";
import { addSuppression, findSuppressions } from "../src/store/suppressions.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";

// The batched suppression lookup's statement on a real PostgreSQL: many keys, one query, each
// answer at its key's place, matched as addresses are stored (email lower-cased), per tenant and
// channel.

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("herald_supp_lookups");
  await addSuppression(db.pool, { tenant: "acme", channel: Channel.EMAIL, address: "Gone@Example.com", reason: "hard_bounce", detail: "550 5.1.1" });
  await addSuppression(db.pool, { tenant: "acme", channel: Channel.SMS, address: "+14155550100", reason: "complaint", detail: "STOP" });
});
afterAll(async () => {
  await db?.drop();
});

describe("findSuppressions", () => {
  it("answers each key in order: suppressed or not, by tenant, channel and normalized address", async () => {
    const found = await findSuppressions(db.pool, [
      { tenant: "acme", channel: Channel.EMAIL, address: "gone@example.com" },
      { tenant: "umbrella", channel: Channel.EMAIL, address: "gone@example.com" },
      { tenant: "acme", channel: Channel.SMS, address: "+14155550100" },
      { tenant: "acme", channel: Channel.PUSH, address: "+14155550100" },
      { tenant: "acme", channel: Channel.EMAIL, address: " GONE@example.COM " },
    ]);
    expect(found.map((s) => s?.reason)).toEqual(["hard_bounce", undefined, "complaint", undefined, "hard_bounce"]);
    expect(found[0]).toMatchObject({ tenant: "acme", address: "gone@example.com", detail: "550 5.1.1" });
    expect(await findSuppressions(db.pool, [])).toEqual([]);
  });

  it("the batcher on the real statement: 200 concurrent lookups, every answer right, far fewer queries", async () => {
    let queries = 0;
    const counted = { query: ((text: string, values: unknown[]) => (queries++, db.pool.query(text, values))) as never };
    const lookups = createSuppressionLookups({ db: counted });
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => lookups.find({ tenant: "acme", channel: Channel.EMAIL, address: i % 10 === 0 ? "gone@example.com" : `ok-${i}@example.com` })),
    );
    expect(answers.filter((a) => a?.reason === "hard_bounce")).toHaveLength(20);
    answers.forEach((a, i) => expect(a === undefined).toBe(i % 10 !== 0));
    expect(queries).toBeLessThanOrEqual(2);
  });
});
