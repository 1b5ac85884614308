import { Counter } from "prom-client";

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help: "GET /dashboard answers by where the body came from: the response cache, or the store (read and rendered)",
    labelNames: ["source"] as const,
  }),
  minSeqRequests: new Counter({
    name: "keybox_query_min_seq_requests_total",
    help: "GET /dashboard requests with minSeq, by outcome: fresh, not_fresh (the wait ran out), rejected (too many waiting)",
    labelNames: ["result"] as const,
  }),
};
