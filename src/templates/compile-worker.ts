import { analyzeSource, createEngine, TemplateSyntaxError, type TemplateField } from "./compile.js";

// Runs in a worker thread of the template compiler (compile-pool.ts): PutTemplate's parse and
// compile, away from the API's event loop. One engine per thread, made once.

export interface AnalyzeTask {
  source: string;
  field: TemplateField;
  /** Set to 1 when the task starts, so the pool can tell a running task from a queued one. */
  started: Int32Array;
}

export type AnalyzeResult = { ok: true; required: string[] } | { ok: false; syntax: string };

const engine = createEngine();

export default function analyze(task: AnalyzeTask): AnalyzeResult {
  Atomics.store(task.started, 0, 1);
  Atomics.notify(task.started, 0);
  try {
    return { ok: true, required: analyzeSource(engine, task.source, task.field) };
  } catch (err) {
    // Anything else (a stack overflow the nesting cap did not foresee) is as much the
    // template's fault: it cannot be stored.
    if (err instanceof TemplateSyntaxError || err instanceof RangeError) return { ok: false, syntax: err.message };
    throw err;
  }
}
