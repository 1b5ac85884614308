// The store adapters the conformance suite runs against, each with a way to open the same data
// again (a restart) and to clean up; an adapter that cannot run here says why.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { StartedMongoDBContainer } from "@testcontainers/mongodb";
import type { DashboardStore, StoredFragment } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { MongoDashboardStore } from "@keybox/read-model/mongodb";

export interface StoreAdapter {
  name: string;
  /** Why this adapter cannot run here; undefined when it can. */
  skip?: string;
  open(): Promise<DashboardStore>;
  reopen(): Promise<DashboardStore>;
  cleanup(): Promise<void>;
}

/** The MongoDB adapter also says where its database is, for a test to open or inspect it itself. */
export interface MongoStoreAdapter extends StoreAdapter {
  /** Undefined when skipped. */
  connection?: { url: string; dbName: string };
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

/**
 * MONGODB_URL (a replica set) with a database of its own for this run, dropped afterwards; else a
 * throwaway single-node replica set from testcontainers; else skipped, saying why. Without a
 * container runtime testcontainers fails at once, so the skip costs no time.
 */
export async function mongoAdapter(): Promise<MongoStoreAdapter> {
  const name = "MongoDB";
  const dbName = `keybox_test_${Date.now()}_${process.pid}`;
  let url = process.env.MONGODB_URL || undefined; // empty means unset, as in loadConfig
  let container: StartedMongoDBContainer | undefined;
  if (!url) {
    try {
      const { MongoDBContainer } = await import("@testcontainers/mongodb");
      container = await new MongoDBContainer("mongo:7").start();
      // The replica set knows itself by the container's hostname: talk to the node directly.
      url = `${container.getConnectionString()}/?directConnection=true`;
    } catch (error) {
      const unavailable = async (): Promise<never> => {
        throw new Error("MongoDB is not available");
      };
      return {
        name,
        skip:
          "no MongoDB: set MONGODB_URL to a replica-set MongoDB, or provide a Docker engine for testcontainers " +
          `(${(error as Error).message})`,
        open: unavailable,
        reopen: unavailable,
        cleanup: async () => {},
      };
    }
  }
  const mongoUrl = url;
  const open = async () => MongoDashboardStore.open({ url: mongoUrl, dbName, appName: "keybox-conformance" });
  return {
    name,
    connection: { url: mongoUrl, dbName },
    open,
    reopen: open,
    cleanup: async () => {
      if (container) {
        await container.stop(); // the data goes with the container
        return;
      }
      const { MongoClient } = await import("mongodb");
      const client = new MongoClient(mongoUrl);
      try {
        await client.db(dbName).dropDatabase();
      } finally {
        await client.close();
      }
    },
  };
}

export async function storeAdapters(): Promise<StoreAdapter[]> {
  return [lmdb(), await mongoAdapter()];
}

/** What a store's snapshot of a dashboard holds: its version, and a copy of each fragment. */
export interface DashboardRead {
  version: number;
  fragments: StoredFragment[];
}

/** Reads one owner's dashboard fragments (or one client's) from a snapshot of `store`, copied. */
export async function readDashboard(
  store: Pick<DashboardStore, "openDashboard">,
  ownerId: string,
  clientId?: string,
): Promise<DashboardRead> {
  const snapshot = await store.openDashboard(ownerId, clientId);
  try {
    const fragments: StoredFragment[] = [];
    await snapshot.fragments((fragment) => fragments.push({ ...fragment, bytes: Buffer.from(fragment.bytes) }));
    return { version: snapshot.version, fragments };
  } finally {
    snapshot.close();
  }
}
