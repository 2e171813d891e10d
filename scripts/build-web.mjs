#!/usr/bin/env node
/* global URL, console */
// Builds the dashboard into dist/web/: the page's TypeScript (and the Connect
// client and generated descriptors it imports) bundled by esbuild into one
// app.js, next to index.html, style.css and icon.svg copied as they are. The
// server serves exactly these files (src/server/dashboard.ts), so nothing is
// fetched from anywhere else when the page runs.
// Run by `npm run build` after tsc: node scripts/build-web.mjs
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = `${root}web/`;
const out = `${root}dist/web/`;

// The bundle's files only: tsc also compiles web/src into dist/web/src, which
// is not served, so the folder is not wiped as a whole.
for (const name of ["index.html", "app.js", "style.css", "icon.svg"]) rmSync(out + name, { force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [`${src}src/main.ts`],
  outfile: `${out}app.js`,
  bundle: true,
  format: "esm",
  platform: "browser",
  // Chromium, Firefox and Safari of the last few years; top-level await is not used.
  target: ["es2022"],
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
  absWorkingDir: root,
});
for (const name of ["index.html", "style.css", "icon.svg"]) copyFileSync(src + name, out + name);

// build() rejects on any error, so reaching here means the bundle is whole.
const kib = (result.metafile.outputs["dist/web/app.js"]?.bytes ?? 0) / 1024;
console.log(`build-web: dist/web/app.js (${kib.toFixed(0)} KiB), index.html, style.css, icon.svg`);
