import type pg from "pg";
import type { Notification, StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { InvalidInputError, UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { acceptBatch, unstorableField, type AcceptOutcome } from "./accept.js";
import type { AcceptInput } from "./accept-statement.js";
import { cancelNotification, type CancelOutcome } from "./cancel.js";
import { inTransaction, isConnectionFailure } from "./db.js";
import { databaseUnavailable, withStoreErrors } from "./errors.js";
import { createGroupCommit } from "./group-commit.js";
import { getNotification } from "./notification-reads.js";

// The notification store: the accept path (group-committed), reads, and Cancel. Every status
// change writes the row, its status event and its outbox records in one transaction (see
// transitions.ts).

export interface NotificationStore {
  accept(input: AcceptInput): Promise<AcceptOutcome>;
  get(tenant: string, id: string): Promise<{ notification: Notification; history: StatusEvent[] } | undefined>;
  cancel(tenant: string, id: string, opts: { now: Date; correlationId: string }): Promise<CancelOutcome>;
  /** Flushes the pending batch, then refuses new work. Idempotent. */
  close(): Promise<void>;
}

export interface NotificationStoreDeps {
  pool: pg.Pool;
  /** Group commit: flush when maxBatch accepts wait or the oldest has waited maxDelayMs. */
  commit: { maxBatch: number; maxDelayMs: number; /** @defaultValue 1 */ maxInFlight?: number };
  /** How long an idempotency key holds (accept.ts). @defaultValue 0, for ever */
  idempotencyTtlMs?: number;
  log: Logger;
}

export function createNotificationStore(deps: NotificationStoreDeps): NotificationStore {
  const { pool, log } = deps;
  const ttlMs = deps.idempotencyTtlMs ?? 0;
  let closed = false;

  // One batch is one transaction. If it fails for a reason other than the
  // database being unavailable, some input was refused by PostgreSQL; retry
  // the halves so that input fails alone and everyone else's request commits.
  async function flush(inputs: readonly AcceptInput[]): Promise<PromiseSettledResult<AcceptOutcome>[]> {
    const started = performance.now();
    try {
      // An explicit transaction, though the writes are one statement: a statement in autocommit
      // that outlives its client (connection cut while it waits on a lock) still commits, and
      // the caller would be told UNAVAILABLE about a notification that was stored. Here no
      // COMMIT comes, so it rolls back.
      const outcomes = await withStoreErrors(() => inTransaction(pool, (client) => acceptBatch(client, inputs, ttlMs)));
      log.debug({ size: inputs.length, ms: Math.round(performance.now() - started) }, "accept batch committed");
      return outcomes.map((value) => ({ status: "fulfilled", value }));
    } catch (err) {
      if (err instanceof UnavailableError || inputs.length === 1) {
        return inputs.map(() => ({ status: "rejected", reason: err }));
      }
      log.warn({ err, size: inputs.length }, "accept batch failed; retrying in halves to isolate the input");
      const mid = inputs.length >> 1;
      return [...(await flush(inputs.slice(0, mid))), ...(await flush(inputs.slice(mid)))];
    }
  }

  const commits = createGroupCommit<AcceptInput, AcceptOutcome>({
    ...deps.commit,
    flush,
    closedError: () => databaseUnavailable("notification store is closed"),
    // The database did not answer (not: answered slowly): whoever waits behind that batch fails now.
    sharesFailure: (err) => err instanceof UnavailableError && isConnectionFailure(err.cause),
  });

  function refuseIfClosed(): void {
    if (closed) throw databaseUnavailable("notification store is closed");
  }

  return {
    accept(input) {
      // Checked before batching: a row PostgreSQL refuses would fail (and
      // retry) everyone else's batch too.
      const field = unstorableField(input);
      if (field) {
        return Promise.reject(new InvalidInputError(`${field}: must not contain NUL or unpaired surrogates`));
      }
      return commits.submit(input);
    },

    async get(tenant, id) {
      refuseIfClosed();
      return getNotification(pool, tenant, id);
    },

    async cancel(tenant, id, opts) {
      refuseIfClosed();
      return cancelNotification(pool, tenant, id, opts);
    },

    close() {
      closed = true;
      return commits.close();
    },
  };
}
