import type { Registry } from "prom-client";
import { counterIn } from "./instruments.js";

// One-click unsubscribes received on the API's HTTP listener (src/unsubscribe/), by what came of
// each POST. GETs (the confirmation page, which mail scanners fetch) change nothing and are not counted.

export type UnsubscribeResult =
  /** Stored: the recipient is unsubscribed from the category from now on. */
  | "recorded"
  /** They had clicked before (a second click, a mailbox provider posting twice): nothing changed. */
  | "repeat"
  /** Not a link of ours: malformed, altered, forged, or signed under a key since deleted. Nothing changed. */
  | "invalid"
  /** The tenant made the category required: nobody may leave it. Nothing changed. */
  | "required";

export type UnsubscribeMetrics = (result: UnsubscribeResult) => void;

export function createUnsubscribeMetrics(registry: Registry): UnsubscribeMetrics {
  const total = counterIn(registry, {
    name: "herald_unsubscribes_total",
    help: "One-click unsubscribe POSTs received, by result (recorded, repeat, invalid, required).",
    labelNames: ["result"],
  });
  // Every series from the first scrape, so a rate over "invalid" is 0 rather than absent.
  for (const r of ["recorded", "repeat", "invalid", "required"] as const) total.labels(r);
  return (result) => total.labels(result).inc();
}
