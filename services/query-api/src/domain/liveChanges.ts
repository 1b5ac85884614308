// What a live stream (GET /dashboard/events) tells its client, as pure functions: which change
// notices concern it, how changes waiting for a slow client coalesce into one, and the SSE text.
import { parseWholeNumber } from "./wholeNumber.ts";
import type { DashboardChanged } from "@keybox/contract";

/**
 * A change to tell a client: the owner's read-model version, and the clients whose data changed,
 * or "all" when that is unknown (a resumed stream, a re-check after a NATS outage) or more than
 * a change may name.
 */
export interface LiveChange {
  version: number;
  clients: ReadonlySet<string> | "all";
}

/** Past this many clients a change says "all": what waits for a slow client stays small. */
export const MAX_CLIENTS_PER_CHANGE = 100;

const limited = (clients: ReadonlySet<string>): LiveChange["clients"] =>
  clients.size > MAX_CLIENTS_PER_CHANGE ? "all" : clients;

/**
 * The change a notice makes for a stream, or undefined when it does not concern the stream: a
 * stream filtered to one client hears only of changes naming it, and names only it. `seen` is the
 * version the stream last told its client: notices from several projectors may arrive out of
 * order, and a late one is told as that, so a stream's ids never go back.
 */
export function changeFor(
  notice: DashboardChanged,
  clientFilter: string | undefined,
  seen: number,
): LiveChange | undefined {
  const version = Math.max(notice.version, seen);
  if (clientFilter === undefined) return { version, clients: limited(new Set(notice.clients)) };
  if (!notice.clients.includes(clientFilter)) return undefined;
  return { version, clients: new Set([clientFilter]) };
}

/** A change of unknown extent up to `version`: the client should refetch everything it shows. */
export const changeOfAll = (version: number): LiveChange => ({ version, clients: "all" });

/**
 * The change a stream missed while it could not hear notices (before a resume, during a NATS
 * outage), from a stored version: the client's for a stream filtered to it (it moves with that
 * client's changes only, so it names just that client), else the owner's, of unknown extent.
 * `seen` is the stream's last version of the same kind (the client's, or the owner's): undefined
 * when `stored` is still that. A version below `seen` is a change too: the store was rebuilt and
 * counts again from 0 (or a reader's copy is behind), and what the client shows may not be what
 * it holds.
 */
export function missedChange(clientFilter: string | undefined, stored: number, seen: number): LiveChange | undefined {
  if (stored === seen) return undefined;
  return clientFilter === undefined ? changeOfAll(stored) : { version: stored, clients: new Set([clientFilter]) };
}

/** One change standing for both: the newer version, the clients of either (bounded). */
export function coalesce(pending: LiveChange | undefined, next: LiveChange): LiveChange {
  if (!pending) return next;
  const version = Math.max(pending.version, next.version);
  if (pending.clients === "all" || next.clients === "all") return { version, clients: "all" };
  return { version, clients: limited(new Set([...pending.clients, ...next.clients])) };
}

/**
 * The SSE event: `id` the version (what the client's Last-Event-ID will say on reconnect), and
 * data `{"version":N,"clients":[…]}`, or `{"version":N,"all":true}` when every client may have changed.
 */
export function changedEvent({ version, clients }: LiveChange): string {
  const data = clients === "all" ? { version, all: true } : { version, clients: [...clients] };
  return `event: changed\nid: ${version}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Sent before a stream closes because its token expired: the client reconnects with a new one. */
export const EXPIRED_EVENT = 'event: expired\ndata: {"message":"Token expired"}\n\n';

/** Keeps proxies from closing an idle stream; EventSource ignores comment lines. */
export const HEARTBEAT = ": keep-alive\n\n";

/** A Last-Event-ID (header or `lastEventId` query): a version, or undefined when absent or not one. */
export function parseLastEventId(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseWholeNumber(value.trim());
}
