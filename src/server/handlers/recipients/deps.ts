import type pg from "pg";
import type { EgressPolicy } from "../../../domain/egress.js";

/** What every RecipientService handler needs: the database (recipients, migration 010) and Create's webhook egress policy. */
export interface RecipientHandlerDeps {
  pool: Pick<pg.Pool, "query">;
  egress: EgressPolicy;
}
