import type pg from "pg";
import { Status } from "../src/client/index.js";
import { isTerminal } from "../src/domain/status.js";
import type { Load } from "./load.js";
import type { Receipt } from "./receipts.js";

// The proof, from the two records that do not depend on Herald's own word: the site's database
// (read directly, not through the proxy) and the provider stand-in's request log, checked
// against what the load generator was answered.
//
//   lost:       a key answered OK with no row, a row that did not end SENT, a SENT row the
//               provider never received, or an OK answer naming another row than the key's;
//   stuck:      a row not terminal when the soak gave up waiting;
//   duplicates: several provider requests under one token are allowed (the same notification,
//               re-sent after a lost outcome, which the provider drops by the token); two rows
//               for one key, or a provider request whose token is no notification, are not;
//   internal:   INTERNAL answers the clients saw;
//   refused:    requests the server refused for good (anything but a retry hint).

export interface NotificationRow {
  id: string;
  key: string | null;
  status: Status;
}

/** The site's notifications, read directly (not through the proxy). */
export async function readRows(pool: pg.Pool): Promise<NotificationRow[]> {
  const r = await pool.query<NotificationRow>(
    "SELECT id, coalesce(idempotency_key, released_idempotency_key) AS key, status FROM notifications",
  );
  return r.rows;
}

/** Rows not in a terminal status. */
export const unfinished = (rows: readonly NotificationRow[]) => rows.filter((r) => !isTerminal(r.status));

export interface Proof {
  passed: boolean;
  requests: number;
  answeredOk: number;
  rows: number;
  /** Rows by final status name. */
  statuses: Record<string, number>;
  lost: { okWithoutRow: Listed; notSent: Listed; sentNeverReceived: Listed; answeredOtherRow: Listed };
  stuck: Listed;
  duplicates: { keysWithSeveralRows: Listed; unknownTokens: Listed; requestsWithoutToken: number; resentTokens: number; resentRequests: number };
  internal: number;
  refused: Record<string, number>;
  /** Schedules whose retry came after their own time (see LoadRequest.outcome); not a failure of the proof. */
  expiredSchedules: number;
  /** Rows stored for a request the client never saw answered OK (an answer lost in a fault): must be SENT too. */
  storedWithoutOk: number;
  pending: number;
}

/** How many, and the first few (keys or ids) to look up. */
export interface Listed {
  count: number;
  sample: string[];
}
const listed = (xs: string[]): Listed => ({ count: xs.length, sample: xs.slice(0, 20) });

export function prove(rows: readonly NotificationRow[], load: Load, receipts: readonly Receipt[]): Proof {
  const byKey = new Map<string, NotificationRow[]>();
  for (const row of rows) byKey.set(row.key ?? "", [...(byKey.get(row.key ?? "") ?? []), row]);
  const requests = [...load.requests.values()];
  const ok = requests.filter((r) => r.outcome === "ok");

  const okWithoutRow = ok.filter((r) => !byKey.has(r.key)).map((r) => r.key);
  const answeredOtherRow = ok.filter((r) => byKey.has(r.key) && !byKey.get(r.key)!.some((row) => row.id === r.id)).map((r) => r.key);
  const received = new Map<string, number>();
  let requestsWithoutToken = 0;
  for (const { token } of receipts) {
    if (token) received.set(token, (received.get(token) ?? 0) + 1);
    else requestsWithoutToken++;
  }
  const ids = new Set(rows.map((r) => r.id));
  const notSent = rows.filter((r) => isTerminal(r.status) && r.status !== Status.SENT).map((r) => r.id);
  const sentNeverReceived = rows.filter((r) => r.status === Status.SENT && !received.has(r.id)).map((r) => r.id);
  const stuck = unfinished(rows).map((r) => r.id);
  const keysWithSeveralRows = [...byKey].filter(([, rs]) => rs.length > 1).map(([k]) => k);
  const unknownTokens = [...received.keys()].filter((t) => !ids.has(t));
  const resent = [...received.values()].filter((n) => n > 1);
  const statuses: Record<string, number> = {};
  for (const row of rows) statuses[Status[row.status]] = (statuses[Status[row.status]] ?? 0) + 1;
  const refused: Record<string, number> = {};
  for (const r of requests) if (r.outcome === "refused") refused[r.refusedWith!] = (refused[r.refusedWith!] ?? 0) + 1;
  const okKeys = new Set(ok.map((r) => r.key));
  const internal = load.attempts.filter((a) => a.code === "INTERNAL").length;
  const pending = requests.filter((r) => r.outcome === "pending").length;

  const passed =
    okWithoutRow.length + notSent.length + sentNeverReceived.length + answeredOtherRow.length === 0 &&
    stuck.length === 0 &&
    keysWithSeveralRows.length + unknownTokens.length + requestsWithoutToken === 0 &&
    internal === 0 &&
    Object.keys(refused).length === 0 &&
    pending === 0;
  return {
    passed,
    requests: requests.length,
    answeredOk: ok.length,
    rows: rows.length,
    statuses,
    lost: { okWithoutRow: listed(okWithoutRow), notSent: listed(notSent), sentNeverReceived: listed(sentNeverReceived), answeredOtherRow: listed(answeredOtherRow) },
    stuck: listed(stuck),
    duplicates: {
      keysWithSeveralRows: listed(keysWithSeveralRows),
      unknownTokens: listed(unknownTokens),
      requestsWithoutToken,
      resentTokens: resent.length,
      resentRequests: resent.reduce((sum, n) => sum + n - 1, 0),
    },
    internal,
    refused,
    expiredSchedules: requests.filter((r) => r.outcome === "expired").length,
    storedWithoutOk: rows.filter((r) => !okKeys.has(r.key ?? "")).length,
    pending,
  };
}
