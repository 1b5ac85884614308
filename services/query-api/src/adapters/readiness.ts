// Readiness of a query API: it can serve reads, that is, the read model answers. The projector's
// lag is no reason to take a replica out of a load balancer (a burst lags every replica at once,
// and each can still serve), nor is NATS: GET /dashboard does not use it, what does (live streams,
// minSeq) waits for it rather than fails, and all replicas share it, so its state is only a detail.
import type { NatsConnection } from "nats";
import type { DashboardStore } from "@keybox/read-model";
import { withTimeout, type Logger, type Readiness } from "@keybox/runtime";

const CACHE_MS = 1000;
/** A hung store makes the probe answer 503 rather than hang. */
const STORE_TIMEOUT_MS = 2000;

export interface ReadinessSources {
  nc: NatsConnection;
  store: DashboardStore;
  log: Logger;
}

export function readinessCheck({ nc, store, log }: ReadinessSources): () => Promise<Readiness> {
  const check = async (): Promise<Readiness> => {
    const nats = nc.isClosed() ? "closed" : "open";
    try {
      const appliedSeq = await withTimeout(store.appliedSeq(), STORE_TIMEOUT_MS);
      return { ready: true, store: "ok", appliedSeq, nats };
    } catch (error) {
      log.warn({ err: error }, "readiness: the read model does not answer");
      return { ready: false, store: "not answering", nats };
    }
  };
  // One check at a time, its result kept for CACHE_MS after it settles, however often probes come.
  let cached: { settledAt: number; value: Promise<Readiness> } | undefined;
  return () => {
    if (!cached || Date.now() - cached.settledAt > CACHE_MS) {
      const entry = { settledAt: Infinity, value: check() };
      void entry.value.then(() => (entry.settledAt = Date.now()));
      cached = entry;
    }
    return cached.value;
  };
}
