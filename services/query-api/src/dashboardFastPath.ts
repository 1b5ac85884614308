// The dashboard fast path: a plain GET /dashboard that can be answered from memory is answered
// straight from node:http, before Hono builds a Request, a Context and a Response for it (which
// cost more than everything else such an answer needs):
// - a conditional one whose ETag is still current: 304, after one point read of the version;
// - an unconditional one whose body is in the response cache at the current version: 200 with the
//   cached bytes (or the cached compressed form the request accepts).
// It answers only the plainest requests (no body, no query but a well-formed clientId, no minSeq,
// a tag list that parses, a token that verifies), with the same headers the app sends; anything
// else (a stale tag, a body not cached, a coding not kept yet) goes on to the Hono app, which
// answers every request in full (app.ts).
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { DashboardStore } from "@keybox/read-model";
import type { OwnerVerifier } from "./auth.ts";
import { negotiateCoding } from "./domain/contentCoding.ts";
import { dashboardKey, type DashboardCache } from "./domain/dashboardCache.ts";
import { MIN_SEQ_HEADER } from "./domain/freshness.ts";
import {
  dashboardHeaders,
  dashboardScope,
  dashboardTag,
  notModifiedHeaders,
  parseIfNoneMatch,
  stillCurrent,
} from "./domain/revalidation.ts";
import { queryApiMetrics as metrics } from "./metrics.ts";

/** As node:http names incoming headers: lower case. */
const MIN_SEQ_HEADER_NAME = MIN_SEQ_HEADER.toLowerCase();

export interface DashboardFastPathDeps {
  store: Pick<DashboardStore, "version" | "versionNow" | "identity">;
  verifyOwner: OwnerVerifier;
  /** The app's response cache: without it only revalidations are answered here. */
  cache?: DashboardCache;
  /** The app's compression threshold: bodies from this size are sent compressed when accepted. */
  compressionMinBytes?: number;
  /** The clock, in milliseconds (for tests). */
  now?: () => number;
}

/** `?clientId=<id>` and nothing else: an id needs no percent-decoding. */
const CLIENT_QUERY = /^\?clientId=([A-Za-z0-9_-]{1,64})$/;
const PATH = "/dashboard";

/** Whether the fast path answered (at once, or later); false: the request is left untouched for the app. */
export type DashboardFastPath = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export function createDashboardFastPath(deps: DashboardFastPathDeps): DashboardFastPath {
  const now = deps.now ?? Date.now;
  const { cache } = deps;
  const compressionMinBytes = deps.compressionMinBytes ?? Number.POSITIVE_INFINITY;
  // Counted like the app's answers (app.ts), so /metrics shows every request whichever path took it.
  const revalidated = metrics.dashboardReads.labels({ source: "revalidated" });
  const fromCache = metrics.dashboardReads.labels({ source: "cache" });
  const counted = (status: "200" | "304") => ({
    answered: metrics.httpRequests.labels({ route: PATH, status }),
    seconds: metrics.httpSeconds.labels({ route: PATH, status }),
  });
  const notModified = counted("304");
  const sent = counted("200");

  /** The cached body at `version` in the coding this request gets, with its headers; undefined if not kept. */
  function cachedAnswer(ownerId: string, clientId: string | undefined, version: number, req: IncomingMessage) {
    const nowMs = now();
    const dashboard = cache?.get(dashboardKey(ownerId, clientId), version, new Date(nowMs).toISOString());
    if (dashboard?.pieces.length !== 1) return undefined; // only joined bodies are cached
    const tag = dashboardTag(dashboardScope(deps.store.identity(), ownerId, clientId), version, dashboard.validUntil);
    const negotiated = negotiateCoding(req.headers["accept-encoding"]);
    const coding = dashboard.byteLength < compressionMinBytes ? "identity" : negotiated;
    const body =
      coding === "identity"
        ? dashboard.pieces[0]!
        : cache?.encodedForm(dashboardKey(ownerId, clientId), dashboard, coding);
    if (!body) return undefined; // not compressed yet: the app compresses it and keeps the result
    return { body, headers: { ...dashboardHeaders(tag, coding, {}), "Content-Length": String(body.byteLength) } };
  }

  /** Answers from the owner's (or client's) current `version`, if it can. */
  function answerAt(
    req: IncomingMessage,
    res: ServerResponse,
    tags: string[] | undefined,
    {
      ownerId,
      clientId,
      version,
      started,
    }: { ownerId: string; clientId: string | undefined; version: number; started: number },
  ): boolean {
    if (tags) {
      const negotiated = negotiateCoding(req.headers["accept-encoding"]);
      const scope = dashboardScope(deps.store.identity(), ownerId, clientId);
      const tag = stillCurrent(tags, scope, version, now(), negotiated);
      if (tag === undefined) return false;
      revalidated.inc();
      res.writeHead(304, notModifiedHeaders(tag, {})).end();
      notModified.answered.inc();
      notModified.seconds.observe((performance.now() - started) / 1000);
      return true;
    }
    const cached = cachedAnswer(ownerId, clientId, version, req);
    if (!cached) return false;
    fromCache.inc();
    res.writeHead(200, cached.headers).end(cached.body);
    sent.answered.inc();
    sent.seconds.observe((performance.now() - started) / 1000);
    return true;
  }

  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    tags: string[] | undefined,
    clientId: string | undefined,
  ): boolean | Promise<boolean> {
    const started = performance.now();
    try {
      // A token verified before and a store that reads at once: answered in this turn, with no
      // promise to wait for (measured with the seed example, 3 interleaved rounds: 33 µs of CPU a
      // request against 36, and 11 % more requests a second).
      const known = deps.verifyOwner.remembered?.(req.headers.authorization);
      const { versionNow } = deps.store;
      if (known && versionNow) {
        const version = versionNow.call(deps.store, known.ownerId, clientId);
        return answerAt(req, res, tags, { ownerId: known.ownerId, clientId, version, started });
      }
    } catch {
      return false; // the app answers it, and reports a failure as it does any other
    }
    return answerLater(req, res, tags, clientId, started);
  }

  async function answerLater(
    req: IncomingMessage,
    res: ServerResponse,
    tags: string[] | undefined,
    clientId: string | undefined,
    started: number,
  ): Promise<boolean> {
    try {
      const owner = await deps.verifyOwner(req.headers.authorization);
      if (!owner) return false; // the app answers 401
      // One point read: the owner's version, or the client's.
      const version = await deps.store.version(owner.ownerId, clientId);
      return answerAt(req, res, tags, { ownerId: owner.ownerId, clientId, version, started });
    } catch {
      return false;
    }
  }

  return (req, res) => {
    if (req.method !== "GET") return false;
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
    const ifNoneMatch = req.headers["if-none-match"];
    if (ifNoneMatch === undefined) return cache ? answer(req, res, undefined, clientId) : false;
    const conditions = parseIfNoneMatch(ifNoneMatch);
    if (!conditions || conditions.any) return false;
    return answer(req, res, conditions.tags, clientId);
  };
}

/** `listener` (the app's), with the fast path answering first what it can. */
export function withDashboardFastPath(fastPath: DashboardFastPath, listener: RequestListener): RequestListener {
  return (req, res) => {
    const answered = fastPath(req, res);
    if (typeof answered === "boolean") {
      if (!answered) listener(req, res);
      return;
    }
    void answered.then((done) => {
      if (!done) listener(req, res);
    });
  };
}
