#!/usr/bin/env node
// `npm run build`: compiles each service's entry point, with the workspace packages it imports, into
// one ES module under dist/ (plus source maps), so production runs plain JavaScript with
// `node --enable-source-maps`. npm packages stay external: they are installed, not bundled. The
// store adapters become chunks of their own, loaded only when chosen (an LMDB process never loads
// the MongoDB driver).
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** What `dist/` holds: `<name>.mjs` for each entry point. */
export const ENTRY_POINTS = {
  projector: "services/projector/src/main.ts",
  "query-api": "services/query-api/src/main.ts",
  dlq: "services/projector/src/dlq.ts",
  rebuild: "services/projector/src/rebuild.ts",
  start: "scripts/start.ts",
};

/** Bundles our own code (relative imports and `@keybox/*`); every other package is imported at run time. */
const externalPackages = {
  name: "external-packages",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith("@keybox/") ? undefined : { path: args.path, external: true },
    );
  },
};

export async function buildServices(outdir = path.join(root, "dist")) {
  rmSync(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: ENTRY_POINTS,
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    plugins: [externalPackages],
    logLevel: "warning",
  });
  writeFileSync(path.join(outdir, ".built"), `${new Date().toISOString()}\n`);
  return outdir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outdir = await buildServices(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  process.stdout.write(`built ${Object.keys(ENTRY_POINTS).join(", ")} into ${path.relative(root, outdir) || outdir}\n`);
}
