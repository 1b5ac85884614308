// A real Server-Sent Events client for the tests, over node:http: what an EventSource sees (events
// with their id and data, comment lines), plus the status and headers of the answer.
import http from "node:http";
import { eventually } from "./pipeline.ts";

export interface SseEvent {
  event: string;
  id?: string;
  data: any;
  /** When it arrived (performance.now()). */
  at: number;
}

export interface SseStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The JSON body of an answer that is not a stream (an error). */
  body?: any;
  events: SseEvent[];
  comments: string[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** Resolves with the first event (from `from` on) that matches, or fails after `timeoutMs`. */
  next(match: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  response: http.IncomingMessage;
  close(): void;
}

/** Opens `url` as an event stream; resolves once the answer's headers are in. `onEvent` sees each event as it comes. */
export function openSse(
  url: string,
  headers: Record<string, string> = {},
  onEvent?: (event: SseEvent) => void,
): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Accept: "text/event-stream", ...headers } }, (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      let rest = "";
      let bodyText = "";
      const isStream = res.headers["content-type"] === "text/event-stream";
      const ended = new Promise<void>((done) => {
        res.on("close", done);
        res.on("end", done);
      });
      res.setEncoding("utf8");
      const stream: SseStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        ended,
        response: res,
        next: (match, timeoutMs = 5000, from = 0) => eventually(async () => events.slice(from).find(match), timeoutMs),
        close: () => req.destroy(),
      };
      res.on("data", (chunk: string) => {
        if (!isStream) {
          bodyText += chunk;
          return;
        }
        const blocks = (rest + chunk).split("\n\n");
        rest = blocks.pop()!;
        for (const block of blocks) {
          const event: Partial<SseEvent> = { event: "message", at: performance.now() };
          let isEvent = false;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) comments.push(line.slice(1).trim());
            const field = /^(event|id|data): ?(.*)$/.exec(line);
            if (!field) continue;
            isEvent = true;
            if (field[1] === "data") event.data = JSON.parse(field[2]!);
            else event[field[1] as "event" | "id"] = field[2]!;
          }
          if (!isEvent) continue;
          events.push(event as SseEvent);
          onEvent?.(event as SseEvent);
        }
      });
      if (isStream) resolve(stream);
      else
        res.on("end", () => {
          stream.body = bodyText ? JSON.parse(bodyText) : undefined;
          resolve(stream);
        });
    });
    req.on("error", reject);
  });
}
