import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { REPO } from "../support/processes.js";

// Debian's headless Chromium, driven by playwright-core, for the dashboard's
// view tests: a fresh profile each time (nothing from another run, and
// playwright-core never downloads a browser of its own), and a list of what
// went wrong in the page (console errors, uncaught exceptions, CSP
// violations), which a test expects to stay empty.

export const CHROMIUM = process.env.HERALD_CHROMIUM ?? "/usr/bin/chromium";

export interface TestBrowser {
  page: Page;
  /** Console errors and uncaught exceptions of the page so far. */
  problems: string[];
  close(): Promise<void>;
}

/** Throws, saying what to do, when dist/ or the browser is missing. */
export function checkPrerequisites(): void {
  if (!existsSync(join(REPO, "dist/web/app.js")) || !existsSync(join(REPO, "dist/src/cli.js"))) {
    throw new Error("dist/ is not built: run `npm run build` (npm test does it first)");
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
}

/**
 * `allowNetworkErrors`: failed fetches (net::ERR_…) are not problems, for a
 * test that takes a dependency away on purpose; an HTTP error status always is.
 */
export async function launchBrowser(opts: { allowNetworkErrors?: boolean } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "herald-chromium-"));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (opts.allowNetworkErrors && /^Failed to load resource: net::ERR_/.test(msg.text())) return;
    problems.push(`console: ${msg.text()}`);
  });
  return {
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
