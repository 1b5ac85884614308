import { Counter } from "prom-client";

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help: "GET /dashboard answers by where the body came from: the response cache, or the store (read and rendered)",
    labelNames: ["source"] as const,
  }),
};
