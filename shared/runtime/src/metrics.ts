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

/** The /metrics answer: the registry as Prometheus text, or a JSON 500 when a collector fails. */
export async function metricsAnswer(): Promise<{ status: 200 | 500; contentType: string; body: string }> {
  try {
    return { status: 200, contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
  } catch {
    return { status: 500, contentType: "application/json", body: JSON.stringify({ message: "Metrics unavailable" }) };
  }
}
