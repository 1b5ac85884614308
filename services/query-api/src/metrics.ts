import { Counter } from "prom-client";

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help:
      "GET /dashboard answers by where the body came from: the response cache, the store (read and rendered), " +
      "or none (revalidated: 304 from the version alone)",
    labelNames: ["source"] as const,
  }),
};
