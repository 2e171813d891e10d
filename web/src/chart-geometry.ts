import type { Point } from "./series.js";

// The arithmetic of a line chart, apart from the DOM so it can be tested in
// Node: the y scale (from 0 to a round maximum), its ticks, and one SVG path
// per line, broken where a value is missing.

export interface Box {
  width: number;
  height: number;
  /** Room for the axis labels: left, and top/bottom. */
  left: number;
  pad: number;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v`, so the axis reads in round numbers; 1 for an empty or flat-zero chart. */
export function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= v * (1 - 1e-9)) return step * magnitude;
  return 10 * magnitude;
}

/** The largest finite value of any of the lines. */
export function maxOf(lines: ReadonlyArray<readonly Point[]>): number {
  let max = 0;
  for (const points of lines) for (const p of points) if (Number.isFinite(p.v) && p.v > max) max = p.v;
  return max;
}

/** Tick values from 0 to `max`, `count` intervals. */
export const ticks = (max: number, count = 4): number[] => Array.from({ length: count + 1 }, (_, i) => (max * i) / count);

export interface Scale {
  x(t: number): number;
  y(v: number): number;
}

export function scale(box: Box, span: { from: number; to: number }, max: number): Scale {
  const plotW = box.width - box.left - box.pad;
  const plotH = box.height - 2 * box.pad;
  const dt = Math.max(1, span.to - span.from);
  return {
    x: (t) => box.left + ((t - span.from) / dt) * plotW,
    y: (v) => box.pad + plotH - (Math.min(v, max) / max) * plotH,
  };
}

const r = (n: number) => Math.round(n * 10) / 10;

/**
 * The path's `d`: a move to the first point of each run of values, lines to
 * the rest; a NaN ends the run, so a gap stays a gap. A run of one point gets
 * a zero-length line, which the round line cap draws as a dot. "" when
 * nothing to draw.
 */
export function pathData(points: readonly Point[], s: Scale): string {
  const parts: string[] = [];
  let run = 0;
  const endRun = () => {
    if (run === 1) parts.push("l0,0");
    run = 0;
  };
  for (const p of points) {
    if (!Number.isFinite(p.v)) {
      endRun();
      continue;
    }
    parts.push(`${run > 0 ? "L" : "M"}${r(s.x(p.t))},${r(s.y(p.v))}`);
    run++;
  }
  endRun();
  return parts.join(" ");
}

/** A value as an axis or legend shows it: integers as is, small rates with up to two decimals. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (Number.isInteger(v) || Math.abs(v) >= 100) return String(Math.round(v));
  return String(Math.round(v * 100) / 100);
}
