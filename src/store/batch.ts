import type pg from "pg";
import { acceptBatch, type AcceptOutcome } from "./accept.js";
import type { AcceptInput } from "./accept-statement.js";
import { inTransaction } from "./db.js";
import { withStoreErrors } from "./errors.js";
import { acceptNotifies, type NotifyInput, type NotifyOutcome } from "./notify.js";

// CreateBatch's transaction: every item of a batch that passed its checks, stored together. A
// batch is a group of its own, so it does not go through the group commit (whose batches are of
// single calls): one transaction, Notify's request rows first (the lock order of notify.ts), then
// the Create and Schedule notifications in one accept statement, their keys in (tenant, key)
// order as every accept batch takes them.

export interface BatchInputs {
  accepts: readonly AcceptInput[];
  notifies: readonly NotifyInput[];
}

export interface BatchOutcomes {
  accepts: AcceptOutcome[];
  notifies: NotifyOutcome[];
}

/** Rejects with UnavailableError when the database is (then nothing of the batch was stored). */
export async function storeBatch(pool: pg.Pool, inputs: BatchInputs, ttlMs: number): Promise<BatchOutcomes> {
  return withStoreErrors(() =>
    inTransaction(pool, async (client) => {
      const notifies = inputs.notifies.length > 0 ? await acceptNotifies(client, inputs.notifies, ttlMs) : [];
      const accepts = inputs.accepts.length > 0 ? await acceptBatch(client, inputs.accepts, ttlMs) : [];
      return { accepts, notifies };
    }),
  );
}
