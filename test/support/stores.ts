// The store adapters the conformance suite runs against, each with a way to open the same data
// again (a restart) and to clean up; an adapter that cannot run here says why.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { LmdbDashboardStore, type DashboardStore } from "@keybox/shared";

export interface StoreAdapter {
  name: string;
  /** Why this adapter cannot run here; undefined when it can. */
  skip?: string;
  open(): Promise<DashboardStore>;
  reopen(): Promise<DashboardStore>;
  cleanup(): Promise<void>;
}

function lmdb(): StoreAdapter {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-store-"));
  return {
    name: "LMDB",
    open: async () => LmdbDashboardStore.open(dir),
    reopen: async () => LmdbDashboardStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function storeAdapters(): Promise<StoreAdapter[]> {
  return [lmdb()];
}
