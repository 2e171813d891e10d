import type pg from "pg";

/** What every SuppressionService handler needs: the database (suppressions, migration 008). */
export interface SuppressionHandlerDeps {
  pool: Pick<pg.Pool, "query">;
}
