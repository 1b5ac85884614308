// The HTTP surface: GET /dashboard, health and readiness, metrics. A thin adapter: it reads the
// owner's fragments from one snapshot of the store and sends them in response order (compressed
// when the client accepts it), or answers a revalidation (If-None-Match) with 304 from one point
// read of the version.
import type { ServerResponse } from "node:http";
import { setImmediate } from "node:timers/promises";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono, type Context } from "hono";
import { routePath } from "hono/route";
import { idSchema } from "@keybox/contract";
import type { DashboardStore } from "@keybox/read-model";
import { metricsAnswer, READ_ONLY_METHODS, type Logger, type Readiness } from "@keybox/runtime";
import { compressWhole, streamCompressed } from "./adapters/compression.ts";
import { writePieces } from "./adapters/pieceWriter.ts";
import { codingFor, negotiateCoding, type ContentCoding } from "./domain/contentCoding.ts";
import { DEFAULT_PAGE_MAX_LIMIT } from "./config.ts";
import { dashboardKey, type DashboardCache } from "./domain/dashboardCache.ts";
import {
  freshnessHeaders,
  MIN_SEQ_HEADER,
  readMinSeq,
  TooManyWaitersError,
  type Freshness,
  type FreshnessSource,
} from "./domain/freshness.ts";
import { pageKey, pageSelection, readPageRequest, type PageRequest } from "./domain/paging.ts";
import { LIVE_STREAM_HEADERS, type LiveRefusal, type LiveUpdates } from "./adapters/liveUpdates.ts";
import type { OwnerVerifier, VerifiedOwner } from "./auth.ts";
import type { FastPathFindingsByRequest } from "./dashboardFastPath.ts";
import { parseLastEventId } from "./domain/liveChanges.ts";
import {
  LargeBodyRefusedError,
  renderSnapshot,
  type LayoutCache,
  type RenderedDashboard,
} from "./domain/renderDashboard.ts";
import {
  dashboardHeaders,
  dashboardScope,
  dashboardTag,
  notModifiedHeaders,
  parseIfNoneMatch,
  stillCurrent,
  uncodedTag,
} from "./domain/revalidation.ts";
import { queryApiMetrics as metrics } from "./metrics.ts";

export interface AppDeps {
  store: DashboardStore;
  verifyOwner: OwnerVerifier;
  readiness: () => Promise<Readiness>;
  log: Logger;
  /** Recently served dashboards; without it every request reads and renders. */
  cache?: DashboardCache;
  /** Client layouts of recent reads (see LayoutCache); without it every read lays out every client. */
  layoutCache?: LayoutCache;
  /** How long a large body may wait for its client to read before it is abandoned (default 60 s). */
  stalledBodyTimeoutMs?: number;
  /**
   * Most large bodies filled from a snapshot of the store they hold while being sent, at once
   * (default 32); more are assembled whole first (see renderSnapshot).
   */
  streamedBodiesMax?: number;
  /**
   * Most bytes of bodies over a MiB assembled whole (past streamedBodiesMax, or from a store that
   * cannot stream them) held at once (default 256 MiB); past it such a request is answered 503.
   * One body is always admitted when none is held, whatever its size.
   */
  assembledBodiesMaxBytes?: number;
  /** When to compress bodies the request accepts compressed; without it, none are. */
  compression?: CompressionLimits;
  /** Waits for a request's minSeq; without it no sequence is known to be visible (fresh: false). */
  freshness?: FreshnessSource;
  /** The most clients one page may ask for. */
  maxPageLimit?: number;
  /** Live streams (GET /dashboard/events); without them the route is not there. */
  live?: LiveUpdates;
  /** What the dashboard fast path found out about the requests it left to the app: not done again. */
  fastPathFindings?: FastPathFindingsByRequest;
  now?: () => Date;
}

export interface CompressionLimits {
  /** Smaller bodies are sent uncompressed. */
  minBytes: number;
  /** Most large bodies streamed through a compressor at once; more are sent uncompressed. */
  maxStreams: number;
}

type Env = { Bindings: Partial<HttpBindings> };
type ClientIdInput = { ok: true; clientId: string | undefined } | { ok: false; tooLarge?: boolean };

/** A dashboard request body only ever holds a clientId. */
const MAX_BODY_BYTES = 16 * 1024;

/**
 * The request body. WHATWG Requests drop GET bodies, so under Node it is read from the raw
 * IncomingMessage; undefined when it is larger than MAX_BODY_BYTES.
 */
async function readBody(c: Context<Env>): Promise<string | undefined> {
  const incoming = c.env?.incoming;
  if (!incoming) return c.req.text();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const UNAUTHORIZED = { message: "Unauthorized" };
const INVALID_CLIENT_ID = { message: "Invalid clientId" };
const INVALID_MIN_SEQ = { message: "Invalid minSeq: must be a stream sequence from 1 to 9007199254740991" };
const TOO_MANY_WAITING = { message: "Too many requests are waiting for minSeq; try again shortly" };
const TOO_MANY_LARGE_BODIES = { message: "Too many large dashboards are being sent; try again shortly" };

/** 500 bodies: they say what failed, never why (that is logged). */
const DASHBOARD_FAILURE = {
  message: "Failed to fetch dashboard",
  error: "The dashboard could not be read. Please try again.",
};
const INTERNAL_ERROR = { message: "Internal Server Error" };

/**
 * 401 with its RFC 6750 challenge: a request without a bearer token is told the scheme; one whose
 * token was refused is also told `invalid_token`.
 */
function unauthorized(c: Context<Env>, authorization: string | undefined) {
  const tokenGiven = /^Bearer +\S/i.test(authorization ?? "");
  const challenge = tokenGiven ? 'Bearer realm="keybox", error="invalid_token"' : 'Bearer realm="keybox"';
  return c.json(UNAUTHORIZED, 401, { "WWW-Authenticate": challenge });
}

/**
 * The optional clientId filter, from the query string or a JSON body (KeyBox's own client sends a
 * body with GET). Anything but a well-formed id, or two different ids, is invalid.
 */
async function readClientId(c: Context<Env>): Promise<ClientIdInput> {
  const fromQuery = c.req.queries("clientId");
  if (fromQuery && fromQuery.length > 1) return { ok: false };
  let fromBody: unknown;
  const text = await readBody(c);
  if (text === undefined) return { ok: false, tooLarge: true };
  if (text.trim() !== "") {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { ok: false };
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return { ok: false };
    fromBody = (body as Record<string, unknown>).clientId;
  }
  const candidates = [fromQuery?.[0], fromBody].filter((v) => v !== undefined);
  if (candidates.length === 0) return { ok: true, clientId: undefined };
  if (!candidates.every((v) => idSchema.safeParse(v).success && v === candidates[0])) return { ok: false };
  return { ok: true, clientId: candidates[0] as string };
}

/** 304: the body the client holds under `tag` is still the current one. */
function notModified(c: Context<Env>, tag: string, extra: Record<string, string>) {
  return c.body(null, 304, notModifiedHeaders(tag, extra));
}

/** A live stream refused: its status, why, and when to try again. */
const refuseStream = (c: Context<Env>, { status, message, retryAfterSeconds }: LiveRefusal) =>
  c.json({ message }, status, { "Retry-After": String(retryAfterSeconds) });

/**
 * The response to write a large body to piece by piece, when it has its socket. A response to a
 * request pipelined behind another has none until that one is sent, and if the client leaves
 * meanwhile it is never closed: its body is handed over whole instead (written when it gets one).
 */
function socketOf(c: Context<Env>): ServerResponse | undefined {
  const outgoing = c.env?.outgoing;
  return outgoing?.socket ? outgoing : undefined;
}

/**
 * The body in one buffer: `whole`, or a large body's pieces copied together (and given back: the
 * copy is what is sent). For what must have all of it at once: a response without a socket of its
 * own, a compressor that compresses it whole.
 */
function wholeBody(dashboard: RenderedDashboard): Uint8Array {
  if (dashboard.whole) return dashboard.whole;
  try {
    const pieces = [...dashboard.pieces()];
    const body = Buffer.concat(pieces, dashboard.byteLength);
    for (const piece of pieces) dashboard.recycle(piece);
    return body;
  } finally {
    dashboard.release();
  }
}

/**
 * Writes a large body to the socket piece by piece (writePieces) and ends the response, each piece
 * back in the pool once the socket has sent it; done with the body (its snapshot ended) in any case.
 */
async function sendPieces(outgoing: ServerResponse, dashboard: RenderedDashboard): Promise<void> {
  try {
    if (await writePieces(outgoing, dashboard.pieces(), (piece) => dashboard.recycle(piece))) outgoing.end();
  } finally {
    dashboard.release();
  }
}

/** The headers of a body sent as it is: with its length. */
const identityHeaders = (dashboard: RenderedDashboard, tag: string, extra: Record<string, string>) => ({
  ...dashboardHeaders(tag, "identity", extra),
  "Content-Length": String(dashboard.byteLength),
});

/** Sends a dashboard with its Content-Length and ETag: at once when whole, else piece by piece. */
function send(c: Context<Env>, dashboard: RenderedDashboard, tag: string, extra: Record<string, string>, log: Logger) {
  const headers = identityHeaders(dashboard, tag, extra);
  const outgoing = socketOf(c);
  if (dashboard.whole || !outgoing) {
    const body = wholeBody(dashboard);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
  }
  outgoing.writeHead(200, headers);
  // The head is sent: a failure now (a snapshot that changed under a streamed body) can only cut
  // the body short, which the client sees as a connection closed before Content-Length.
  sendPieces(outgoing, dashboard).catch((error: unknown) => {
    log.error({ err: error }, "dashboard body cut short");
    outgoing.destroy();
  });
  return RESPONSE_ALREADY_SENT;
}

/**
 * Sends a body in one piece compressed in `coding`, with its Content-Length. It is compressed once:
 * the compressed form is kept beside the body in the cache (when the body is cached under `key`).
 */
async function sendCompressedWhole(
  c: Context<Env>,
  dashboard: RenderedDashboard,
  tag: string,
  coding: ContentCoding,
  extra: Record<string, string>,
  cache: DashboardCache | undefined,
  key: string,
) {
  let body = cache?.encodedForm(key, dashboard, coding);
  if (!body) {
    metrics.dashboardCompressions.inc({ coding, body: "whole" });
    body = await compressWhole(wholeBody(dashboard), coding);
    cache?.keepEncodedForm(key, dashboard, coding, body);
  }
  dashboard.release(); // a cached compressed form was sent: its body was not read
  const headers = { ...dashboardHeaders(tag, coding, extra), "Content-Length": String(body.byteLength) };
  return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
}

/** Calls `release` once the response is sent, or its connection closes (a queued response is never closed). */
function releaseWhenAnswered(c: Context<Env>, release: () => void): void {
  const response = c.env?.outgoing;
  const socket = c.env?.incoming?.socket;
  if (!response) {
    release();
    return;
  }
  const done = () => {
    socket?.off("close", done);
    release();
  };
  response.once("finish", done);
  response.once("close", done);
  socket?.once("close", done);
}

/**
 * Closes the connection when the client reads nothing of a large body for `ms`: the body's pieces
 * (and a compressor) would otherwise stay held for as long as the client keeps the socket open.
 * Every write resets the socket's timer; the timer is cleared once the response is over.
 */
function abandonIfStalled(outgoing: ServerResponse, ms: number): void {
  const socket = outgoing.socket;
  if (!socket) return;
  const stalled = () => outgoing.destroy(new Error(`the client read nothing for ${ms} ms`));
  socket.setTimeout(ms, stalled);
  outgoing.once("close", () => {
    socket.setTimeout(0);
    socket.off("timeout", stalled);
  });
}

/**
 * Streams a large body through a compressor to the socket, chunked (its compressed length is not
 * known up front); resolves once it is sent, or cut short by the client leaving.
 */
async function sendStreamed(
  outgoing: ServerResponse,
  dashboard: RenderedDashboard,
  tag: string,
  coding: ContentCoding,
  extra: Record<string, string>,
  log: Logger,
) {
  metrics.dashboardCompressions.inc({ coding, body: "streamed" });
  outgoing.writeHead(200, dashboardHeaders(tag, coding, extra));
  try {
    const recycle = (piece: Uint8Array) => dashboard.recycle(piece);
    const complete = await streamCompressed(dashboard.pieces(), dashboard.byteLength, coding, outgoing, recycle);
    // Cut short (the head is sent, so there is nothing more to answer).
    if (!complete) log.debug("compressed dashboard not sent whole: the client went away or the compressor failed");
  } catch (error) {
    log.error({ err: error }, "dashboard body cut short");
    outgoing.destroy();
  } finally {
    dashboard.release();
  }
  return RESPONSE_ALREADY_SENT;
}

export function createApp(deps: AppDeps): Hono<Env> {
  const now = deps.now ?? (() => new Date());
  const maxPageLimit = deps.maxPageLimit ?? DEFAULT_PAGE_MAX_LIMIT;
  const app = new Hono<Env>();
  /** Large bodies being streamed through a compressor now (also the gauge's value). */
  let compressedStreams = 0;
  /** Large bodies being filled from a snapshot they hold (see renderSnapshot) now. */
  let streamedBodies = 0;
  /** Bytes of large bodies assembled whole and not yet released (also the gauge's value). */
  let assembledBytes = 0;
  const assembledMax = deps.assembledBodiesMaxBytes ?? 256 * 1024 * 1024;
  /** Counts `bytes` as held by a large body; the function returned gives them back (once). */
  const holdMemory = (bytes: number) => {
    assembledBytes += bytes;
    metrics.assembledBodyBytes.set(assembledBytes);
    let held = true;
    return () => {
      if (held) assembledBytes -= bytes;
      held = false;
      metrics.assembledBodyBytes.set(assembledBytes);
    };
  };

  /**
   * The body to answer with at `version`: the cached one, or one read and rendered now (its
   * version then the snapshot's, as a commit may have landed since the point read).
   */
  const currentBody = async (
    {
      ownerId,
      clientId,
      page,
      at,
    }: { ownerId: string; clientId: string | undefined; page: PageRequest | undefined; at: Date },
    key: string,
    version: number,
  ): Promise<{ dashboard: RenderedDashboard; version: number }> => {
    const cached = deps.cache?.get(key, version, at.getTime());
    metrics.dashboardReads.inc({ source: cached ? "cache" : "store" });
    if (cached) return { dashboard: cached, version };
    const snapshot = await deps.store.openDashboard(ownerId, clientId);
    // A slot for a streamed body, taken before the render (other requests run during it) and given
    // back when the body turns out not streamed, or once it is released.
    const stream = streamedBodies < (deps.streamedBodiesMax ?? 32);
    let slotHeld = stream;
    const giveSlotBack = () => {
      if (slotHeld) metrics.streamedBodies.set(--streamedBodies);
      slotHeld = false;
    };
    if (stream) metrics.streamedBodies.set(++streamedBodies);
    // The memory a large body assembled whole takes, counted from before it is filled until released.
    let giveMemoryBack = () => {};
    const admit = (bytes: number) => {
      if (assembledBytes > 0 && assembledBytes + bytes > assembledMax) return false;
      giveMemoryBack = holdMemory(bytes);
      return true;
    };
    let rendered: RenderedDashboard;
    try {
      // The snapshot is the render's now: closed by it, or by the body's release() when streamed.
      rendered = await renderSnapshot(snapshot, at, {
        select: page && pageSelection(page),
        stream,
        admit,
        layouts: deps.layoutCache && { cache: deps.layoutCache, ownerId },
      });
    } catch (error) {
      giveSlotBack();
      giveMemoryBack();
      throw error;
    }
    if (deps.layoutCache) metrics.layoutCacheBytes.set(deps.layoutCache.bytes);
    if (!rendered.streamed) giveSlotBack();
    if (rendered.whole) {
      // Only a body in one piece (up to a MiB): what the fast path sends as it is.
      deps.cache?.set(key, { version: snapshot.version, dashboard: rendered });
      return { dashboard: rendered, version: snapshot.version };
    }
    // A large body took a while to lay out: let other requests run before it is written.
    await setImmediate();
    const release = () => {
      giveSlotBack();
      giveMemoryBack();
      rendered.release();
    };
    return { dashboard: { ...rendered, release }, version: snapshot.version };
  };

  /** Sends a 200: as it is, compressed whole (kept in the cache), or streamed through a compressor. */
  const sendBody = async (
    c: Context<Env>,
    dashboard: RenderedDashboard,
    {
      tag,
      negotiated,
      extra,
      key,
    }: { tag: string; negotiated: ContentCoding | "identity"; extra: Record<string, string>; key: string },
  ) => {
    const outgoing = socketOf(c);
    const { compression } = deps;
    const coding = compression ? codingFor(dashboard.byteLength, negotiated, compression.minBytes) : "identity";
    // A large body handed over whole waits, copied, for its response's turn: counted until then.
    if (!outgoing && !dashboard.whole) releaseWhenAnswered(c, holdMemory(dashboard.byteLength));
    if (dashboard.whole || !outgoing) {
      if (coding === "identity") return send(c, dashboard, tag, extra, deps.log);
      return sendCompressedWhole(c, dashboard, tag, coding, extra, deps.cache, key);
    }
    // Each stream holds a compressor and keeps threadpool threads busy: past the limit, uncompressed.
    const streamedCoding = compression && compressedStreams < compression.maxStreams ? coding : "identity";
    if (c.req.method === "HEAD") {
      // A large body's headers are known once its heads are visited: HEAD gets them, and nothing
      // more is read (of a streamed body), compressed or sent (a streamed compressed body has no
      // Content-Length, in GET's answer either).
      if (!dashboard.streamed) for (const piece of dashboard.pieces()) dashboard.recycle(piece);
      dashboard.release();
      const headers =
        streamedCoding === "identity"
          ? identityHeaders(dashboard, tag, extra)
          : dashboardHeaders(tag, streamedCoding, extra);
      outgoing.writeHead(200, headers).end();
      return RESPONSE_ALREADY_SENT;
    }
    abandonIfStalled(outgoing, deps.stalledBodyTimeoutMs ?? 60_000);
    if (streamedCoding === "identity") return send(c, dashboard, tag, extra, deps.log);
    metrics.compressedStreams.set(++compressedStreams);
    try {
      return await sendStreamed(outgoing, dashboard, tag, streamedCoding, extra, deps.log);
    } finally {
      metrics.compressedStreams.set(--compressedStreams);
    }
  };

  /** What the dashboard fast path found out about this request before leaving it to the app, if it did. */
  const findingsOf = (c: Context<Env>) => {
    const incoming = c.env?.incoming;
    return incoming && deps.fastPathFindings?.get(incoming);
  };

  app.use(async (c, next) => {
    // From its arrival, even when the fast path looked at it first.
    const started = findingsOf(c)?.started ?? performance.now();
    await next();
    // A body written to the socket directly (a large dashboard) has its status there.
    const outgoing = c.env?.outgoing;
    const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status;
    const route = routePath(c, -1);
    const labels = { route: route === "/*" ? "unmatched" : route, status: String(status) };
    metrics.httpRequests.inc(labels);
    metrics.httpSeconds.observe(labels, (performance.now() - started) / 1000);
  });

  /**
   * Who asks and for which client (and the version the fast path read for them, if it did), or the
   * answer refusing the request.
   */
  const authorize = async (
    c: Context<Env>,
  ): Promise<{ owner: VerifiedOwner; clientId: string | undefined; version?: number } | Response> => {
    const authorization = c.req.header("Authorization");
    const found = findingsOf(c);
    const owner = found ? found.owner : await deps.verifyOwner(authorization);
    if (!owner) return unauthorized(c, authorization);
    const input = await readClientId(c);
    if (!input.ok)
      return input.tooLarge ? c.json({ message: "Request body too large" }, 413) : c.json(INVALID_CLIENT_ID, 400);
    // The fast path leaves only requests with no body, page or minSeq: it read the version of this
    // owner and this client (from the query), as the handler would.
    return { owner, clientId: input.clientId, version: found?.owner && found.version };
  };

  /** Waits for the request's minSeq, if it names one: how fresh the answer is, or the answer refusing it. */
  const awaitMinSeq = async (c: Context<Env>): Promise<Freshness | undefined | Response> => {
    const input = readMinSeq(c.req.queries("minSeq"), c.req.header(MIN_SEQ_HEADER));
    if (!input.ok) return c.json(INVALID_MIN_SEQ, 400);
    if (input.minSeq === undefined) return undefined;
    try {
      const freshness = deps.freshness
        ? await deps.freshness.waitFor(input.minSeq)
        : { fresh: false, visibleSeq: undefined };
      metrics.minSeqRequests.inc({ result: freshness.fresh ? "fresh" : "not_fresh" });
      return freshness;
    } catch (error) {
      if (!(error instanceof TooManyWaitersError)) throw error;
      metrics.minSeqRequests.inc({ result: "rejected" });
      return c.json(TOO_MANY_WAITING, 503, { "Retry-After": "1" });
    }
  };

  app.get("/dashboard", async (c) => {
    const asked = await authorize(c);
    if (asked instanceof Response) return asked;
    const {
      owner: { ownerId },
      clientId,
      version: readBefore,
    } = asked;
    const paging = readPageRequest(c.req.queries("limit"), c.req.queries("cursor"), maxPageLimit);
    if (!paging.ok) return c.json({ message: paging.message }, 400);
    const { page } = paging;
    const freshness = await awaitMinSeq(c);
    if (freshness instanceof Response) return freshness;
    const at = now();
    const pageQuery = page ? pageKey(page) : undefined;
    const scope = dashboardScope(deps.store.identity(), ownerId, clientId, pageQuery);
    const extra = freshness ? freshnessHeaders(freshness) : {};
    const conditions = parseIfNoneMatch(c.req.header("If-None-Match"));
    const negotiated = negotiateCoding(c.req.header("Accept-Encoding"));
    // The owner's version, or the client's for one client's view: one point read (or the fast path's).
    const version = readBefore ?? (await deps.store.version(ownerId, clientId));
    if (conditions && !conditions.any) {
      // A tag of this version and scope whose validity has not run out: nothing to read or render.
      const current = stillCurrent(conditions.tags, scope, version, at.getTime(), negotiated);
      if (current !== undefined) {
        metrics.dashboardReads.inc({ source: "revalidated" });
        return notModified(c, current, extra);
      }
    }
    const key = dashboardKey(ownerId, clientId) + (pageQuery ?? "");
    let body: Awaited<ReturnType<typeof currentBody>>;
    try {
      body = await currentBody({ ownerId, clientId, page, at }, key, version);
    } catch (error) {
      if (!(error instanceof LargeBodyRefusedError)) throw error;
      metrics.largeBodiesRefused.inc();
      return c.json(TOO_MANY_LARGE_BODIES, 503, { "Retry-After": "1" });
    }
    try {
      const tag = dashboardTag(scope, body.version, body.dashboard.validUntil);
      // `*` (any current body), or a tag equal to this one that the check above could not vouch for.
      if (conditions && (conditions.any || conditions.tags.some((t) => uncodedTag(t, negotiated) === tag))) {
        body.dashboard.release(); // not sent
        return notModified(c, tag, extra);
      }
      return await sendBody(c, body.dashboard, { tag, negotiated, extra, key });
    } catch (error) {
      body.dashboard.release(); // its snapshot, if sending failed before it took the body over
      throw error;
    }
  });

  app.get("/dashboard/events", async (c) => {
    const outgoing = c.env?.outgoing;
    if (!deps.live || !outgoing) return c.notFound();
    const asked = await authorize(c);
    if (asked instanceof Response) return asked;
    const { ownerId, expiresAtMs } = asked.owner;
    // HEAD: the answer GET would start with, and no stream (which would hold a slot until the token expires).
    if (c.req.method === "HEAD") {
      const refusal = deps.live.refusal(ownerId);
      if (refusal) return refuseStream(c, refusal);
      outgoing.writeHead(200, LIVE_STREAM_HEADERS).end();
      return RESPONSE_ALREADY_SENT;
    }
    // EventSource sends Last-Event-ID on reconnect; polyfills that cannot set headers use the query.
    const lastEventId = parseLastEventId(c.req.header("Last-Event-ID") ?? c.req.query("lastEventId"));
    const opening = await deps.live.open({ ownerId, clientId: asked.clientId, expiresAtMs, lastEventId }, outgoing);
    return opening.streaming ? RESPONSE_ALREADY_SENT : refuseStream(c, opening);
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const readiness = await deps.readiness().catch((error: Error) => ({ ready: false, error: error.message }));
    return c.json({ status: readiness.ready ? "ready" : "not ready", ...readiness }, readiness.ready ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    const { status, contentType, body } = await metricsAnswer();
    return c.body(body, status, { "Content-Type": contentType });
  });

  // Every route only reads: another method on one of them is refused with the methods it takes.
  for (const path of new Set(app.routes.filter((route) => route.method === "GET").map((route) => route.path)))
    app.all(path, (c) => c.json({ message: "Method Not Allowed" }, 405, { Allow: READ_ONLY_METHODS }));

  app.notFound((c) => c.json({ message: "Not Found" }, 404));

  app.onError((error, c) => {
    deps.log.error({ err: error, path: c.req.path }, "request failed");
    return c.json(c.req.path === "/dashboard" ? DASHBOARD_FAILURE : INTERNAL_ERROR, 500);
  });

  return app;
}
