import { Counter, Gauge } from "prom-client";

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help: "GET /dashboard answers by where the body came from: the response cache, or the store (read and rendered)",
    labelNames: ["source"] as const,
  }),
  dashboardCompressions: new Counter({
    name: "keybox_query_dashboard_compressions_total",
    help: "GET /dashboard bodies compressed, by coding and how: whole (a body up to 1 MiB, then kept in the response cache) or streamed (a larger one, compressed for each request)",
    labelNames: ["coding", "body"] as const,
  }),
  compressedStreams: new Gauge({
    name: "keybox_query_dashboard_compressed_streams",
    help: "Large GET /dashboard bodies being streamed through a compressor now",
  }),
};
