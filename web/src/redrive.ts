import { ConnectError } from "@connectrpc/connect";
import { codeName } from "./feed.js";

// Redriving a selection: RedriveDeadLetters takes one id or a filter, and a
// selection of rows is neither, so each id is its own call. A single id that
// is no longer dead (redriven elsewhere, or dead again and redriven) is
// FAILED_PRECONDITION: that is reported against its id, and the others go on.

export interface RedriveError {
  id: string;
  /** The gRPC code's name, e.g. FAILED_PRECONDITION. */
  code: string;
  message: string;
}

export interface RedriveOutcome {
  redriven: string[];
  errors: RedriveError[];
}

/** Redrives each id in turn (one at a time: an operator's selection, not a bulk job). */
export async function redriveEach(ids: readonly string[], redrive: (id: string) => Promise<readonly string[]>): Promise<RedriveOutcome> {
  const outcome: RedriveOutcome = { redriven: [], errors: [] };
  for (const id of ids) {
    try {
      const queued = await redrive(id);
      if (queued.includes(id)) outcome.redriven.push(id);
      else outcome.errors.push({ id, code: "NOT_REDRIVEN", message: "the server queued nothing for this id" });
    } catch (err) {
      const e = ConnectError.from(err);
      outcome.errors.push({ id, code: codeName(e.code), message: e.rawMessage });
    }
  }
  return outcome;
}

/** "2 redriven", "1 redriven, 1 failed: <id> FAILED_PRECONDITION: …". */
export function outcomeText(o: RedriveOutcome): string {
  const head = `${o.redriven.length} redriven`;
  if (o.errors.length === 0) return head;
  return `${head}, ${o.errors.length} failed: ${o.errors.map((e) => `${e.id} ${e.code}: ${e.message}`).join("; ")}`;
}
