// Readiness: connected to NATS, the read model answers, and the projector has caught up with the
// stream (within `maxLag` events not yet applied), judged from the durable consumer's counters.
import type { DashboardStore, NatsConnection } from "@keybox/shared";
import type { Readiness } from "../app.ts";

const CACHE_MS = 1000;

export interface ReadinessSources {
  nc: NatsConnection;
  store: DashboardStore;
  stream: string;
  durable: string;
  maxLag: number;
}

export function readinessCheck({ nc, store, stream, durable, maxLag }: ReadinessSources): () => Promise<Readiness> {
  let cached: { at: number; value: Promise<Readiness> } | undefined;
  const check = async (): Promise<Readiness> => {
    if (nc.isClosed()) return { ready: false, nats: "closed" };
    const jsm = await nc.jetstreamManager({ timeout: 2000 });
    const [info, appliedSeq] = await Promise.all([jsm.consumers.info(stream, durable), store.appliedSeq()]);
    const lag = info.num_pending + info.num_ack_pending;
    return { ready: lag <= maxLag, nats: "connected", lag, appliedSeq };
  };
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at > CACHE_MS) cached = { at: now, value: check() };
    return cached.value;
  };
}
