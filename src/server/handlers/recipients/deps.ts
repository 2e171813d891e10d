import type pg from "pg";
import type { EgressPolicy } from "../../../domain/egress.js";
import type { ErasureOutcome, ErasureRequest } from "../../../store/erasure.js";

/** What every RecipientService handler needs: the database (recipients, migration 010) and Create's webhook egress policy. */
export interface RecipientHandlerDeps {
  pool: Pick<pg.Pool, "query">;
  egress: EgressPolicy;
  /** EraseRecipient's store: batches of transactions (store/erasure.ts eraseRecipient over the pool). */
  eraseRecipient(req: ErasureRequest): Promise<ErasureOutcome>;
}
