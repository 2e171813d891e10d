import type pg from "pg";
import { createBatchedLookups } from "./batched-lookups.js";
import { findSuppressions, type Suppression, type SuppressionKey } from "./suppressions.js";

// The workers' suppression lookups, batched (batched-lookups.ts): one query per batch of sends.

export interface SuppressionLookups {
  /** The address's suppression for the tenant, if any; rejects with the database's error. */
  find(key: SuppressionKey): Promise<Suppression | undefined>;
}

export function createSuppressionLookups(deps: {
  db: Pick<pg.Pool, "query">;
  /** Most lookups in one statement. @defaultValue 500 */
  maxBatch?: number;
}): SuppressionLookups {
  return createBatchedLookups((keys: SuppressionKey[]) => findSuppressions(deps.db, keys), { maxBatch: deps.maxBatch });
}
