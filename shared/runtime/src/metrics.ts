import { collectDefaultMetrics, register } from "prom-client";

/** The process's Prometheus registry, which /metrics serves; every metric of the services registers here. */
export const metricsRegistry = register;

let collecting = false;

/** Adds the standard process metrics (CPU, memory, event-loop lag, GC), once per process. */
export function collectProcessMetrics(): void {
  if (collecting) return;
  collecting = true;
  collectDefaultMetrics({ register: metricsRegistry });
}
