import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { readBacklog } from "../src/store/backlog.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";

// readBacklog against the real schema: rows are written by SQL with due times and ages set
// relative to the database's now(), so each part's count and age are known exactly (ages to
// within the time the test itself takes).

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("herald_backlog");
});
afterAll(async () => {
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query("TRUNCATE dead_letters, outbox, notifications CASCADE");
});

/** A notification in `status`; times are seconds relative to now() (negative: in the past). */
async function notification(status: Status, at: { deliverIn?: number; nextAttemptIn?: number } = {}): Promise<string> {
  const id = uuidv7();
  await db.pool.query(
    `INSERT INTO notifications (id, tenant, channel, user_id, status, spec, correlation_id, deliver_at, next_attempt_at, last_sequence, created_at, updated_at)
     VALUES ($1, 't', $2, 'u', $3, '\\x', 'c', now() + $4 * interval '1 second',
             CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + $5 * interval '1 second' END, 1, now(), now())`,
    [id, Channel.EMAIL, status, at.deliverIn ?? 0, at.nextAttemptIn ?? null],
  );
  return id;
}

/** An outbox row written `ageSeconds` ago; published when `published`. */
async function outboxRow(ageSeconds: number, published = false): Promise<void> {
  await db.pool.query(
    `INSERT INTO outbox (topic, key, value, created_at, published_at)
     VALUES ('herald.email', 'k', '\\x00', now() - $1 * interval '1 second', CASE WHEN $2 THEN now() END)`,
    [ageSeconds, published],
  );
}

async function deadLetter(redriven: boolean): Promise<void> {
  const id = await notification(Status.FAILED);
  await db.pool.query(
    `INSERT INTO dead_letters (notification_id, tenant, channel, status, last_error, attempts, created_at, redriven_at)
     VALUES ($1, 't', $2, $3, 'boom', 1, now(), CASE WHEN $4 THEN now() END)`,
    [id, Channel.EMAIL, Status.FAILED, redriven],
  );
}

describe("readBacklog", () => {
  it("reads zeros from an empty database", async () => {
    expect(await readBacklog(db.pool)).toEqual({ outboxPending: 0, outboxOldestAgeSeconds: 0, dueUnreleased: 0, dueOldestAgeSeconds: 0, deadLettersOpen: 0 });
  });

  it("counts unpublished outbox rows and ages the oldest of them, not published ones", async () => {
    await outboxRow(300, true); // published: neither counted nor aged
    await outboxRow(30);
    await outboxRow(20);
    await outboxRow(10);
    const b = await readBacklog(db.pool);
    expect(b.outboxPending).toBe(3);
    expect(b.outboxOldestAgeSeconds).toBeGreaterThanOrEqual(30);
    expect(b.outboxOldestAgeSeconds).toBeLessThan(60);
    expect(b).toMatchObject({ dueUnreleased: 0, dueOldestAgeSeconds: 0, deadLettersOpen: 0 });
  });

  it("counts due SCHEDULED and RETRYING rows, and ages the one due longest", async () => {
    await notification(Status.SCHEDULED, { deliverIn: -40 });
    await notification(Status.SCHEDULED, { deliverIn: -5 });
    await notification(Status.SCHEDULED, { deliverIn: 3600 }); // not due yet
    await notification(Status.RETRYING, { deliverIn: -500, nextAttemptIn: -70 }); // due since its next attempt, not since deliver_at
    await notification(Status.RETRYING, { deliverIn: -500, nextAttemptIn: 3600 }); // retry not due yet
    await notification(Status.QUEUED, { deliverIn: -900 }); // released already
    const b = await readBacklog(db.pool);
    expect(b.dueUnreleased).toBe(3);
    expect(b.dueOldestAgeSeconds).toBeGreaterThanOrEqual(70);
    expect(b.dueOldestAgeSeconds).toBeLessThan(100);
    expect(b).toMatchObject({ outboxPending: 0, deadLettersOpen: 0 });
  });

  it("ages due scheduled rows alone when no retry is due", async () => {
    await notification(Status.SCHEDULED, { deliverIn: -12 });
    const b = await readBacklog(db.pool);
    expect(b.dueUnreleased).toBe(1);
    expect(b.dueOldestAgeSeconds).toBeGreaterThanOrEqual(12);
    expect(b.dueOldestAgeSeconds).toBeLessThan(40);
  });

  it("counts open dead letters, not redriven ones", async () => {
    await deadLetter(false);
    await deadLetter(false);
    await deadLetter(true);
    const b = await readBacklog(db.pool);
    expect(b.deadLettersOpen).toBe(2);
    expect(b).toMatchObject({ outboxPending: 0, dueUnreleased: 0 });
  });
});
