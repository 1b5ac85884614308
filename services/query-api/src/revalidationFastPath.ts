// The revalidation fast path: a conditional GET /dashboard whose ETag is still current is answered
// 304 straight from node:http, before Hono builds a Request, a Context and a Response for it (which
// cost more than everything else a 304 needs). It answers only the plainest such requests (no
// body, no query but a well-formed clientId, a tag list that parses, a token that verifies) and
// only with 304; anything else, a stale tag included, goes on to the Hono app, which answers every
// request in full and does the same revalidation there (app.ts).
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { DashboardStore } from "@keybox/read-model";
import type { OwnerVerifier } from "./auth.ts";
import {
  DASHBOARD_CACHE_CONTROL,
  dashboardScope,
  etagValue,
  parseIfNoneMatch,
  stillCurrent,
} from "./domain/revalidation.ts";
import { negotiateCoding } from "./domain/contentCoding.ts";
import { MIN_SEQ_HEADER } from "./domain/freshness.ts";
import { queryApiMetrics as metrics } from "./metrics.ts";

/** As node:http names incoming headers: lower case. */
const MIN_SEQ_HEADER_NAME = MIN_SEQ_HEADER.toLowerCase();

export interface RevalidationDeps {
  store: Pick<DashboardStore, "version" | "identity">;
  verifyOwner: OwnerVerifier;
  /** The clock, in milliseconds (for tests). */
  now?: () => number;
}

/** `?clientId=<id>` and nothing else: an id needs no percent-decoding. */
const CLIENT_QUERY = /^\?clientId=([A-Za-z0-9_-]{1,64})$/;
const PATH = "/dashboard";

/** Whether the fast path answered (304); false: the request is left untouched for the app. */
type Revalidate = (req: IncomingMessage, res: ServerResponse) => false | Promise<boolean>;

export function createRevalidator(deps: RevalidationDeps): Revalidate {
  const now = deps.now ?? Date.now;
  const revalidated = metrics.dashboardReads.labels({ source: "revalidated" });
  // Counted like the app's answers (app.ts), so /metrics shows every request whichever path took it.
  const answered = metrics.httpRequests.labels({ route: PATH, status: "304" });
  const answerSeconds = metrics.httpSeconds.labels({ route: PATH, status: "304" });

  async function answer(
    req: IncomingMessage,
    res: ServerResponse,
    tags: string[],
    clientId: string | undefined,
  ): Promise<boolean> {
    const started = performance.now();
    try {
      const owner = await deps.verifyOwner(req.headers.authorization);
      if (!owner) return false; // the app answers 401
      const { ownerId } = owner;
      // One point read: the owner's version, or the client's.
      const version = await deps.store.version(ownerId, clientId);
      const negotiated = negotiateCoding(req.headers["accept-encoding"]);
      const tag = stillCurrent(
        tags,
        dashboardScope(deps.store.identity(), ownerId, clientId),
        version,
        now(),
        negotiated,
      );
      if (tag === undefined) return false;
      revalidated.inc();
      res
        .writeHead(304, { "Cache-Control": DASHBOARD_CACHE_CONTROL, ETag: etagValue(tag), Vary: "Accept-Encoding" })
        .end();
      answered.inc();
      answerSeconds.observe((performance.now() - started) / 1000);
      return true;
    } catch {
      return false; // the app answers it, and reports a failure as it does any other
    }
  }

  return (req, res) => {
    const ifNoneMatch = req.headers["if-none-match"];
    if (ifNoneMatch === undefined || req.method !== "GET") return false;
    const url = req.url ?? "";
    if (!url.startsWith(PATH)) return false;
    let clientId: string | undefined;
    if (url.length > PATH.length) {
      const query = CLIENT_QUERY.exec(url.slice(PATH.length));
      if (!query) return false;
      clientId = query[1];
    }
    // A read-your-writes request waits for its sequence first: the app does that.
    if (req.headers[MIN_SEQ_HEADER_NAME] !== undefined) return false;
    // A body may name a clientId: the app reads it.
    const length = req.headers["content-length"];
    if (req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0")) return false;
    const conditions = parseIfNoneMatch(ifNoneMatch);
    if (!conditions || conditions.any) return false;
    return answer(req, res, conditions.tags, clientId);
  };
}

/** `listener` (the app's), with the fast path answering first what it can. */
export function withRevalidation(revalidate: Revalidate, listener: RequestListener): RequestListener {
  return (req, res) => {
    const answered = revalidate(req, res);
    if (answered === false) {
      listener(req, res);
      return;
    }
    void answered.then((done) => {
      if (!done) listener(req, res);
    });
  };
}
