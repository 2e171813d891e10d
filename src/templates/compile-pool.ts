import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { OverloadedError } from "../errors.js";
import { TemplateSyntaxError, type TemplateField } from "./compile.js";
import type { AnalyzeResult, AnalyzeTask } from "./compile-worker.js";

// PutTemplate's compile, off the event loop: a tenant's template is parsed and compiled in a
// worker thread (piscina) under a deadline, so no template, however costly, stalls the other
// calls of the server. A compile that outlives its deadline has its thread terminated and the
// template is refused; one that cannot even start (every thread busy, the queue full) is
// refused as overload, to be retried.

export interface TemplateCompiler {
  /** The variables `source` requires (compile.ts analyzeSource); throws TemplateSyntaxError, TemplateTooCostlyError or OverloadedError. */
  analyze(source: string, field: TemplateField): Promise<string[]>;
  close(): Promise<void>;
}

/** A template whose compile ran past the deadline (from its start): refused, it would cost as much every time. */
export class TemplateTooCostlyError extends TemplateSyntaxError {
  override name = "TemplateTooCostlyError";
}

export interface CompilePoolOptions {
  /** Longest a compile may run (in its thread) before the template is refused. @defaultValue 2000 */
  timeoutMs?: number;
  /** Threads at most; idle ones end after a while. @defaultValue 1 */
  threads?: number;
  /** Compiles waiting for a thread, beyond which a PutTemplate is refused as overload. @defaultValue 16 */
  maxQueue?: number;
  /** Longest a compile may wait for a thread to start it before it is refused as overload. @defaultValue 30000 */
  queueTimeoutMs?: number;
}

export function createCompilePool(opts: CompilePoolOptions = {}): TemplateCompiler {
  const { timeoutMs = 2000, threads = 1, maxQueue = 16, queueTimeoutMs = 30_000 } = opts;
  const pool = new Piscina({ filename: workerFile(), minThreads: 0, maxThreads: threads, maxQueue, idleTimeout: 30_000 });

  return {
    async analyze(source, field) {
      if (pool.queueSize >= maxQueue) throw overloaded();
      const started = new Int32Array(new SharedArrayBuffer(4));
      const task: AnalyzeTask = { source, field, started };
      const stop = new AbortController();
      // The deadline runs from the moment the thread starts the compile, so neither a wait in
      // the queue nor a thread's start-up (loading Handlebars, slow on a busy machine) counts
      // against the template. A compile that has not started within queueTimeoutMs is
      // refused as overload.
      let timer: NodeJS.Timeout | undefined;
      const wait = waitAsync(started, 0, 0, queueTimeoutMs);
      void Promise.resolve(wait.value).then(() => {
        if (stop.signal.aborted) return;
        if (Atomics.load(started, 0) === 0) stop.abort();
        else timer = setTimeout(() => stop.abort(), timeoutMs);
      });
      let result: AnalyzeResult;
      try {
        result = (await pool.run(task, { signal: stop.signal })) as AnalyzeResult;
      } catch (err) {
        if (!stop.signal.aborted) throw err;
        if (Atomics.load(started, 0) === 0) throw overloaded();
        throw new TemplateTooCostlyError(`took longer than ${timeoutMs} ms to compile; simplify it (fewer or less nested expressions)`);
      } finally {
        clearTimeout(timer);
        // Settles the wait above when the compile ended before it started the timer.
        Atomics.store(started, 0, 1);
        Atomics.notify(started, 0);
        stop.abort();
      }
      if (!result.ok) throw new TemplateSyntaxError(result.syntax);
      return result.required;
    },
    close: () => pool.destroy(),
  };

  function overloaded(): OverloadedError {
    return new OverloadedError("template compiler busy: too many PutTemplate calls at once", timeoutMs);
  }
}

/**
 * The worker's module. Threads run JavaScript: next to this file when it runs from dist/, and
 * from the build when it runs from source (vitest; `npm test` builds first).
 */
function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  const file = here.replace(/compile-pool\.[jt]s$/, "compile-worker.js");
  return here.endsWith(".ts") ? file.replace(/\/src\/templates\//, "/dist/src/templates/") : file;
}

// Atomics.waitAsync is in Node 20 (V8 8.7+) but in TypeScript's lib only from ES2024.
type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs: number) => { async: boolean; value: string | Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
