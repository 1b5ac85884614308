#!/usr/bin/env node
// `npm start` / `npm test` (and the separate services) on a fresh clone: installs what is missing (node modules; nats-server
// through apt-get where possible), then runs. Plain JavaScript with no dependencies, because it
// runs before anything is installed.
import { spawnSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
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
  console.error("Installing node modules...");
  const ok = existsSync(lock)
    ? run("npm", ["ci", "--no-audit", "--no-fund"])
    : run("npm", ["install", "--no-audit", "--no-fund"]);
  if (!ok) {
    console.error("npm could not install the dependencies; see the output above.");
    process.exit(1);
  }
}

function hasNatsServer() {
  return spawnSync("nats-server", ["--version"], { stdio: "ignore" }).status === 0;
}

function ensureNatsServer() {
  if (process.env.NATS_URL || hasNatsServer()) return;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (isRoot && hasApt) {
    console.error("nats-server is missing; installing it with apt-get...");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    if (run("apt-get", ["install", "-y", "nats-server"], { env }) || (run("apt-get", ["update"], { env }) && run("apt-get", ["install", "-y", "nats-server"], { env }))) {
      if (hasNatsServer()) return;
    }
  }
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

const tsx = ["--import", "tsx"];
switch (command) {
  case "start":
    ensureNodeModules();
    ensureNatsServer();
    exec(process.execPath, [...tsx, "scripts/start.ts", ...passThrough]);
    break;
  case "projector":
  case "query-api":
    // The services on their own: they need NATS_URL, so no local nats-server is installed.
    ensureNodeModules();
    exec(process.execPath, [...tsx, `services/${command}/src/main.ts`, ...passThrough]);
    break;
  case "test":
    ensureNodeModules();
    ensureNatsServer();
    exec(process.execPath, [path.join(root, "node_modules", "vitest", "vitest.mjs"), "run", ...passThrough]);
    break;
  default:
    console.error("usage: node scripts/run.mjs start|test|projector|query-api [args...]");
    process.exit(2);
}
