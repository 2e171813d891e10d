import type { Progress } from "./result.js";

// The runner's progress display on stderr. On a terminal: one live line, redrawn in place,
// with the scenario, its current step and the time it has run. Elsewhere (CI, a pipe): plain
// timestamped lines, one per step, so a log shows where a run spent its time.

export interface ProgressDisplay {
  /** A scenario starts; returns the Progress handed to it. */
  begin(id: string, index: number, total: number): Progress;
  /** The scenario ended: ok or with an error. */
  end(outcome: string): void;
  /** A line between scenarios (files written, a summary). */
  log(text: string): void;
}

const clock = () => new Date().toISOString().slice(11, 19);

export function createProgress(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  const live = stream.isTTY === true;
  let current: { label: string; step: string; started: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  // Plain mode prints a step when it is a new kind of step (counts aside) or 1.5 s after the last, so a
  // "12,000 rows left" countdown does not flood a CI log.
  let printed = { shape: "", at: 0 };
  const shape = (text: string) => text.replace(/\d[\d,.]*/g, "#");
  const elapsed = () => (current ? `${((performance.now() - current.started) / 1000).toFixed(1)}s` : "");

  const draw = () => {
    if (!current) return;
    const line = `${current.label} ${elapsed().padStart(6)}  ${current.step}`;
    stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, (stream.columns || 100) - 1))}`);
  };
  const clearLine = () => live && stream.write("\r\x1b[2K");

  return {
    begin(id, index, total) {
      const mine = { label: `[${index}/${total} ${id}]`, step: "starting", started: performance.now() };
      current = mine;
      if (live) timer = setInterval(draw, 200);
      else stream.write(`${clock()} ${current.label} starting\n`);
      return {
        step(text) {
          // A scenario abandoned after its timeout may still report; it must not draw over the next.
          if (current !== mine) return;
          if (!live && (shape(text) !== printed.shape || performance.now() - printed.at > 1500)) {
            stream.write(`${clock()} ${current.label} ${elapsed()} ${text}\n`);
            printed = { shape: shape(text), at: performance.now() };
          }
          current.step = text;
          if (live) draw();
        },
      };
    },
    end(outcome) {
      clearInterval(timer);
      if (!current) return;
      clearLine();
      stream.write(`${clock()} ${current.label} ${outcome} in ${elapsed()}\n`);
      current = undefined;
    },
    log(text) {
      clearLine();
      stream.write(`${clock()} ${text}\n`);
      if (live) draw();
    },
  };
}
