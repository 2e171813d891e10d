#!/usr/bin/env node
/* global URL, console */
// Copies the SQL migrations next to the compiled migrator: src/store/migrations/*.sql →
// dist/src/store/migrations/. migrate() reads the folder beside its own module, so the
// published package (which ships dist/, not src/) carries its schema with it.
// Run by `npm run build` after tsc: node scripts/build-migrations.mjs
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../src/store/migrations/", import.meta.url));
const to = fileURLToPath(new URL("../dist/src/store/migrations/", import.meta.url));

// Wiped first: a migration renamed or removed in src/ must not linger in dist/.
rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
const files = readdirSync(from).filter((f) => f.endsWith(".sql"));
for (const file of files) copyFileSync(from + file, to + file);
console.log(`build-migrations: ${files.length} migrations → dist/src/store/migrations/`);
