#!/usr/bin/env node
/* global URL, console */
// The npm registry reachable from our build machines does not serve every
// platform build of packages that ship native binaries as optional
// dependencies (e.g. @bufbuild/buf-darwin-arm64). `npm install` then leaves
// them out of package-lock.json, and `npm ci` refuses a lock that lacks an
// entry for any declared optional dependency. This adds the missing entries,
// marked with their os/cpu so npm skips them on other platforms, exactly as a
// lock written against the full registry would have them.
// Run after every `npm install`: node scripts/lockfile-platforms.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;
const osOf = (n) => ["darwin", "win32", "linux", "freebsd", "android", "sunos", "openbsd", "aix"].find((os) => n.includes(os));
const cpuOf = (n) =>
  n.includes("arm64") || n.includes("aarch64") ? "arm64"
  : n.includes("armv7") || /-arm(\b|$)/.test(n) ? "arm"
  : n.includes("x64") || n.includes("x86_64") ? "x64"
  : n.includes("ia32") ? "ia32"
  : undefined;

let added = 0;
for (const [key, pkg] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const depKey = `node_modules/${dep}`;
    if (packages[depKey] || packages[`${key}/${depKey}`]) continue;
    const os = osOf(dep);
    const cpu = cpuOf(dep);
    if (!os || !cpu) throw new Error(`${dep}: missing from the lock and not recognisably platform-specific`);
    packages[depKey] = { version, cpu: [cpu], ...(pkg.dev ? { dev: true } : {}), optional: true, os: [os] };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`lockfile-platforms: added ${added} platform entries`);
