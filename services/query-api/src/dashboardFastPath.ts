// The dashboard fast path: a plain GET /dashboard that can be answered from memory is answered
// straight from node:http, before Hono builds a Request, a Context and a Response for it (which
// cost more than everything else such an answer needs):
// - a conditional one whose ETag is still current: 304, after one point read of the version;
// - an unconditional one whose body is in the response cache at the current version: 200 with the
//   cached bytes (or the cached compressed form the request accepts).
// It answers only the plainest requests (no body, no query but a well-formed clientId, no minSeq,
// one Authorization header, a tag list that parses, a token that verifies), with the same headers
// the app sends; anything else (a stale tag, a body not cached, a coding not kept yet, a refused
// token) goes on to the Hono app, which answers every request in full (app.ts), with what was found
// out on the way (the token's owner, the version read), so that the app does not work it out again.
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { DashboardStore } from "@keybox/read-model";
import type { OwnerVerifier, VerifiedOwner } from "./auth.ts";
import { codingFor, negotiateCoding } from "./domain/contentCoding.ts";
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

/**
 * What the fast path found out about a request it then left to the app: when it arrived
 * (performance.now()), and that its token proves no owner (the app answers 401), or the owner and
 * the version read for it (the owner's, or the `clientId` query's client's).
 */
export type FastPathFindings =
  | { started: number; owner: undefined }
  | { started: number; owner: VerifiedOwner; version: number };

/** The fast path's findings by request, for the app; weakly held, so that each goes with its request. */
export type FastPathFindingsByRequest = WeakMap<IncomingMessage, FastPathFindings>;

export interface DashboardFastPathDeps {
  store: Pick<DashboardStore, "version" | "versionNow" | "identity">;
  verifyOwner: OwnerVerifier;
  /** The app's response cache: without it only revalidations are answered here. */
  cache?: DashboardCache;
  /** The app's compression threshold: bodies from this size are sent compressed when accepted. */
  compressionMinBytes: number;
  /** Where the findings about a request left to the app go (the app's `fastPathFindings`). */
  findings: FastPathFindingsByRequest;
  /** The clock, in milliseconds (for tests). */
  now?: () => number;
}

/** A response's headers, as res.writeHead takes them (it only reads string-valued ones like these). */
type ResponseHeaders = Readonly<Record<string, string>>;

/** `?clientId=<id>` and nothing else: an id needs no percent-decoding. */
const CLIENT_QUERY = /^\?clientId=([A-Za-z0-9_-]{1,64})$/;
const PATH = "/dashboard";

/** Whether the fast path answered (at once, or later); false: the request is left for the app. */
export type DashboardFastPath = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/** A request the fast path tries to answer. */
interface Ask {
  req: IncomingMessage;
  res: ServerResponse;
  /** The If-None-Match tags; undefined: an unconditional request. */
  tags: string[] | undefined;
  clientId: string | undefined;
  /** When it arrived (performance.now()). */
  started: number;
}

/**
 * Whether `rawHeaders` (names and values, alternating) name Authorization more than once. node:http
 * keeps only the first in `headers.authorization`, while the app sees them all, joined, and refuses
 * that: such a request is left to the app, so that both paths give it the same answer.
 */
function repeatsAuthorization(rawHeaders: string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 13 && name.toLowerCase() === "authorization") {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}

export function createDashboardFastPath(deps: DashboardFastPathDeps): DashboardFastPath {
  const now = deps.now ?? Date.now;
  const { store, verifyOwner, cache, compressionMinBytes, findings } = deps;
  // Counted like the app's answers (app.ts), so /metrics shows every request whichever path took it.
  const revalidated = metrics.dashboardReads.labels({ source: "revalidated" });
  const fromCache = metrics.dashboardReads.labels({ source: "cache" });
  const counted = (status: "200" | "304") => ({
    answered: metrics.httpRequests.labels({ route: PATH, status }),
    seconds: metrics.httpSeconds.labels({ route: PATH, status }),
  });
  const notModified = counted("304");
  const sent = counted("200");

  /** Leaves the request to the app, with what was found out about it. */
  function leave({ req, started }: Ask, found: { owner: undefined } | { owner: VerifiedOwner; version: number }) {
    findings.set(req, { started, ...found });
    return false;
  }

  /**
   * The headers each cached body (identity or compressed) is sent with, made on its first hit. A
   * body's bytes belong to one rendering: one cache key (owner and client), one version and
   * validUntil (which make the tag), one coding and length (a compressed form kept again is new
   * bytes). So its headers stay right for as long as it is served, unless the store's identity
   * changes (a rebuilt store), which every hit checks. Frozen: every response shares them.
   */
  const headersOfCached = new WeakMap<Uint8Array, { identity: string; headers: ResponseHeaders }>();

  /** The cached body at `version` in the coding this request gets, with its headers; undefined if not kept. */
  function cachedAnswer({ req, clientId }: Ask, ownerId: string, version: number) {
    const key = dashboardKey(ownerId, clientId);
    const dashboard = cache?.get(key, version, now());
    if (!dashboard?.whole) return undefined; // only bodies in one piece are cached
    const negotiated = negotiateCoding(req.headers["accept-encoding"]);
    const coding = codingFor(dashboard.byteLength, negotiated, compressionMinBytes);
    const body = coding === "identity" ? dashboard.whole : cache?.encodedForm(key, dashboard, coding);
    if (!body) return undefined; // not compressed yet: the app compresses it and keeps the result
    const identity = store.identity();
    let made = headersOfCached.get(body);
    if (made?.identity !== identity) {
      const tag = dashboardTag(dashboardScope(identity, ownerId, clientId), version, dashboard.validUntil);
      const headers = { ...dashboardHeaders(tag, coding, {}), "Content-Length": String(body.byteLength) };
      made = { identity, headers: Object.freeze(headers) };
      headersOfCached.set(body, made);
    }
    return { body, headers: made.headers };
  }

  /** Answers from the owner's (or client's) current `version` if it can; else leaves the request to the app. */
  function answerAt(ask: Ask, owner: VerifiedOwner, version: number): boolean {
    const { req, res, tags, clientId, started } = ask;
    if (tags) {
      const negotiated = negotiateCoding(req.headers["accept-encoding"]);
      const scope = dashboardScope(store.identity(), owner.ownerId, clientId);
      const tag = stillCurrent(tags, scope, version, now(), negotiated);
      if (tag === undefined) return leave(ask, { owner, version });
      revalidated.inc();
      res.writeHead(304, notModifiedHeaders(tag)).end();
      notModified.answered.inc();
      notModified.seconds.observe((performance.now() - started) / 1000);
      return true;
    }
    const cached = cachedAnswer(ask, owner.ownerId, version);
    if (!cached) return leave(ask, { owner, version });
    fromCache.inc();
    res.writeHead(200, cached.headers).end(cached.body);
    sent.answered.inc();
    sent.seconds.observe((performance.now() - started) / 1000);
    return true;
  }

  function answer(ask: Ask): boolean | Promise<boolean> {
    const owner = verifyOwner(ask.req.headers.authorization);
    if (!owner) return leave(ask, { owner: undefined });
    // A remembered token and a store that reads at once (LMDB): answered in this turn, with no
    // promise to wait for (measured with the seed example, 3 interleaved rounds: 33 µs of CPU a
    // request against 36, and 11 % more requests a second).
    if (owner instanceof Promise || !store.versionNow) return answerLater(ask, owner);
    try {
      return answerAt(ask, owner, store.versionNow(owner.ownerId, ask.clientId));
    } catch {
      return false; // the app answers it, and reports a failure as it does any other
    }
  }

  /** Rejects when the store fails: the app answers it then (withDashboardFastPath). */
  async function answerLater(ask: Ask, pending: VerifiedOwner | Promise<VerifiedOwner | undefined>) {
    const owner = await pending;
    if (!owner) return leave(ask, { owner: undefined });
    return answerAt(ask, owner, await store.version(owner.ownerId, ask.clientId));
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
    if (repeatsAuthorization(req.rawHeaders)) return false;
    const ifNoneMatch = req.headers["if-none-match"];
    let tags: string[] | undefined;
    if (ifNoneMatch === undefined) {
      if (!cache) return false;
    } else {
      const conditions = parseIfNoneMatch(ifNoneMatch);
      if (!conditions || conditions.any) return false;
      tags = conditions.tags;
    }
    return answer({ req, res, tags, clientId, started: performance.now() });
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
    // A failure (the store's) is the app's to answer and report, as it does any other.
    void answered.then(
      (done) => {
        if (!done) listener(req, res);
      },
      () => listener(req, res),
    );
  };
}
