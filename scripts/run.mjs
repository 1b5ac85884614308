#!/usr/bin/env node
// `npm start` / `npm test` (and the separate services) on a fresh clone: installs what is missing
// (node modules; nats-server, and for the tests strace, through apt-get where possible), builds dist/
// when it is stale, then runs. Plain JavaScript with no dependencies, because it runs before
// anything is installed.
import { spawnSync, spawn } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const command = process.argv[2];
const passThrough = process.argv.slice(3);

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...options });
  return result.status === 0;
}

function ensureNodeModules() {
  const marker = path.join(root, "node_modules", ".package-lock.json");
  const lock = path.join(root, "package-lock.json");
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
  if (!stale) return;
  // A production machine (NODE_ENV=production) gets no development dependencies.
  const production = process.env.NODE_ENV === "production";
  console.error(`Installing node modules${production ? " (production only)" : ""}...`);
  const install = existsSync(lock) ? ["ci"] : ["install"];
  const ok = run("npm", [...install, ...(production ? ["--omit=dev"] : []), "--no-audit", "--no-fund"]);
  if (!ok) {
    console.error("npm could not install the dependencies; see the output above.");
    process.exit(1);
  }
}

/** The newest modification time of the TypeScript the build reads. */
function newestSource() {
  let newest = 0;
  const visit = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== "node_modules") visit(full);
      else if (/\.(ts|mjs|json)$/.test(entry.name)) newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  for (const dir of ["shared", "services", "scripts"]) visit(path.join(root, dir));
  return newest;
}

/** Builds dist/ when it is missing or older than the sources (needs the development dependencies). */
function ensureBuilt() {
  const stamp = path.join(root, "dist", ".built");
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()) return;
  if (!existsSync(path.join(root, "node_modules", "esbuild"))) {
    console.error(
      "dist/ is missing or stale and esbuild (a development dependency) is not installed: " +
        "run `npm ci && npm run build`.",
    );
    process.exit(1);
  }
  if (!run(process.execPath, ["scripts/build.mjs"])) process.exit(1);
}

/** Whether `command --version` (or `-V`) runs. */
const installed = (command, versionFlag = "--version") =>
  spawnSync(command, [versionFlag], { stdio: "ignore" }).status === 0;

/** Installs a Debian package with apt-get where this process may (root, apt-get present); whether it did. */
function aptInstall(pkg) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot || !installed("apt-get")) return false;
  console.error(`${pkg} is missing; installing it with apt-get...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  return (
    run("apt-get", ["install", "-y", pkg], { env }) ||
    (run("apt-get", ["update"], { env }) && run("apt-get", ["install", "-y", pkg], { env }))
  );
}

function ensureNatsServer() {
  if (process.env.NATS_URL || installed("nats-server")) return;
  if (aptInstall("nats-server") && installed("nats-server")) return;
  console.error(
    [
      "nats-server (2.9 or newer, with JetStream) is needed and could not be installed automatically.",
      "Install it with your package manager (Debian/Ubuntu: sudo apt-get install -y nats-server),",
      "or from https://github.com/nats-io/nats-server/releases, or set NATS_URL to a running server.",
    ].join("\n"),
  );
  process.exit(1);
}

/**
 * strace, for the test that traces an LMDB commit's flushes (test/lmdbStore.test.ts): installed
 * where it can be, tried once per install of the node modules; without it that test is skipped,
 * saying why.
 */
function ensureStrace() {
  const triedBefore = path.join(root, "node_modules", ".keybox-strace-unavailable");
  if (installed("strace", "-V") || existsSync(triedBefore)) return;
  if (!aptInstall("strace") || !installed("strace", "-V")) writeFileSync(triedBefore, "");
}

/**
 * Runs a child, passing on the first SIGINT/SIGTERM so the service can shut down cleanly (later
 * ones are the same Ctrl-C arriving again through npm, or a second press the child handles).
 */
function exec(cmd, args) {
  const child = spawn(cmd, args, { stdio: "inherit", cwd: root });
  let forwarded = false;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      if (!forwarded) child.kill(signal);
      forwarded = true;
    });
  }
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

/** Production runs the built JavaScript; source maps make stack traces point at the TypeScript. */
const runBuilt = (name) => exec(process.execPath, ["--enable-source-maps", `dist/${name}.mjs`, ...passThrough]);

switch (command) {
  case "start":
    ensureNodeModules();
    ensureNatsServer();
    ensureBuilt();
    runBuilt("start");
    break;
  case "projector":
  case "query-api":
  case "dlq":
  case "rebuild":
    // The services (and the operator's tools) on their own: they need NATS_URL, so no local
    // nats-server is installed.
    ensureNodeModules();
    ensureBuilt();
    runBuilt(command);
    break;
  case "test":
    ensureNodeModules();
    ensureNatsServer();
    ensureStrace();
    // The same checks as CI: types (and lint) first, then the suite.
    if (!run("npm", ["run", "--silent", "check"])) process.exit(1);
    exec(process.execPath, [path.join(root, "node_modules", "vitest", "vitest.mjs"), "run", ...passThrough]);
    break;
  default:
    console.error("usage: node scripts/run.mjs start|test|projector|query-api|dlq|rebuild [args...]");
    process.exit(2);
}
