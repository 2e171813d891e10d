import type pg from "pg";
import { findSuppressions, type Suppression, type SuppressionKey } from "./suppressions.js";

// The workers' suppression lookups, batched: every send asks before it goes out, and one query
// per send was a round trip and a statement per notification (at 1,000 sends a second, an eighth
// of the worker's CPU and a tenth of PostgreSQL's). One query is in flight at a time; lookups
// that arrive meanwhile wait and go together in the next, so an idle worker asks at once and a
// busy one asks once per batch, as the group commits do.

export interface SuppressionLookups {
  /** The address's suppression for the tenant, if any; rejects with the database's error. */
  find(key: SuppressionKey): Promise<Suppression | undefined>;
}

interface Waiting {
  key: SuppressionKey;
  resolve: (s: Suppression | undefined) => void;
  reject: (err: unknown) => void;
}

export function createSuppressionLookups(deps: {
  db: Pick<pg.Pool, "query">;
  /** Most lookups in one statement. @defaultValue 500 */
  maxBatch?: number;
}): SuppressionLookups {
  const { db, maxBatch = 500 } = deps;
  let queue: Waiting[] = [];
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        const found = await findSuppressions(db, batch.map((w) => w.key));
        batch.forEach((w, i) => w.resolve(found[i]));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    running = false;
  }

  return {
    find(key) {
      return new Promise((resolve, reject) => {
        queue.push({ key, resolve, reject });
        if (!running) void drain();
      });
    },
  };
}
