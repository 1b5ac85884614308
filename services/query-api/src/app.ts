// The HTTP surface: GET /dashboard, health and readiness, metrics. A thin adapter: it reads the
// owner's fragments with one range read and sends them in response order.
import { setImmediate } from "node:timers/promises";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono, type Context } from "hono";
import { idSchema } from "@keybox/contract";
import type { DashboardStore } from "@keybox/read-model";
import { metricsAnswer, type Logger, type Readiness } from "@keybox/runtime";
import type { LiveUpdates } from "./adapters/liveUpdates.ts";
import type { OwnerVerifier, VerifiedOwner } from "./auth.ts";
import { dashboardKey, type DashboardCache } from "./domain/dashboardCache.ts";
import { parseLastEventId } from "./domain/liveChanges.ts";
import { renderDashboard, type RenderedDashboard } from "./domain/renderDashboard.ts";
import { queryApiMetrics as metrics } from "./metrics.ts";

export interface AppDeps {
  store: DashboardStore;
  verifyOwner: OwnerVerifier;
  readiness: () => Promise<Readiness>;
  log: Logger;
  /** Recently served dashboards; without it every request reads and renders. */
  cache?: DashboardCache;
  /** Live streams (GET /dashboard/events); without them the route is not there. */
  live?: LiveUpdates;
  now?: () => Date;
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

/** Above this size a body is not joined into one buffer but written to the socket piece by piece. */
const JOIN_UP_TO_BYTES = 1024 * 1024;

/** A small body in one piece: cached that way, it is sent without joining again. */
function joinSmall(dashboard: RenderedDashboard): RenderedDashboard {
  if (dashboard.byteLength > JOIN_UP_TO_BYTES || dashboard.pieces.length === 1) return dashboard;
  return { ...dashboard, pieces: [Buffer.concat(dashboard.pieces, dashboard.byteLength)] };
}

/**
 * Sends a dashboard with its Content-Length. A large one's pieces (views of the stored fragments)
 * are queued on the socket as they are: the socket sends them as it drains, so the body is never
 * copied whole and the event loop is free meanwhile.
 */
function send(c: Context<Env>, { pieces, byteLength }: RenderedDashboard) {
  const headers = { "Content-Type": "application/json", "Content-Length": String(byteLength) };
  const outgoing = c.env?.outgoing;
  if (pieces.length === 1 || !outgoing) {
    const body = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, byteLength);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
  }
  outgoing.writeHead(200, headers);
  outgoing.cork();
  for (const piece of pieces) outgoing.write(piece);
  outgoing.end();
  return RESPONSE_ALREADY_SENT;
}

export function createApp(deps: AppDeps): Hono<Env> {
  const now = deps.now ?? (() => new Date());
  const app = new Hono<Env>();

  /** Who asks and for which client, or the answer refusing the request. */
  const authorize = async (
    c: Context<Env>,
  ): Promise<{ owner: VerifiedOwner; clientId: string | undefined } | Response> => {
    const authorization = c.req.header("Authorization");
    const owner = await deps.verifyOwner(authorization);
    if (!owner) return unauthorized(c, authorization);
    const input = await readClientId(c);
    if (!input.ok)
      return input.tooLarge ? c.json({ message: "Request body too large" }, 413) : c.json(INVALID_CLIENT_ID, 400);
    return { owner, clientId: input.clientId };
  };

  app.get("/dashboard", async (c) => {
    const asked = await authorize(c);
    if (asked instanceof Response) return asked;
    const {
      owner: { ownerId },
      clientId,
    } = asked;
    const at = now();
    const key = dashboardKey(ownerId, clientId);
    let dashboard = deps.cache?.get(key, await deps.store.ownerVersion(ownerId), at.toISOString());
    metrics.dashboardReads.inc({ source: dashboard ? "cache" : "store" });
    if (!dashboard) {
      const { version, fragments } = await deps.store.readDashboard(ownerId, clientId);
      dashboard = joinSmall(renderDashboard(fragments, at));
      // A large body took a while to assemble: let other requests run before it is written.
      if (dashboard.pieces.length > 1) await setImmediate();
      // Only a joined body: a large one's pieces keep whole fragments (and read buffers) alive,
      // more memory than the cache would count.
      if (dashboard.pieces.length === 1) deps.cache?.set(key, { version, dashboard });
    }
    return send(c, dashboard);
  });

  app.get("/dashboard/events", async (c) => {
    const outgoing = c.env?.outgoing;
    if (!deps.live || !outgoing) return c.notFound();
    const asked = await authorize(c);
    if (asked instanceof Response) return asked;
    const { ownerId, expiresAtMs } = asked.owner;
    // EventSource sends Last-Event-ID on reconnect; polyfills that cannot set headers use the query.
    const lastEventId = parseLastEventId(c.req.header("Last-Event-ID") ?? c.req.query("lastEventId"));
    const opening = await deps.live.open({ ownerId, clientId: asked.clientId, expiresAtMs, lastEventId }, outgoing);
    if (!opening.streaming)
      return c.json({ message: opening.message }, opening.status, { "Retry-After": String(opening.retryAfterSeconds) });
    return RESPONSE_ALREADY_SENT;
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

  app.notFound((c) => c.json({ message: "Not Found" }, 404));

  app.onError((error, c) => {
    deps.log.error({ err: error, path: c.req.path }, "request failed");
    return c.json(c.req.path === "/dashboard" ? DASHBOARD_FAILURE : INTERNAL_ERROR, 500);
  });

  return app;
}
