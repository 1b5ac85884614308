// HTTP from the benchmark's side: load with autocannon, single timed requests, metrics scrapes.
import http from "node:http";
import autocannon from "autocannon";
import { SignJWT } from "jose";
import { observe } from "./observations.ts";
import { JWT_SECRET } from "./services.ts";

export async function tokenFor(ownerId: string): Promise<string> {
  return new SignJWT({ userId: ownerId })
    .setProtectedHeader({ alg: "HS256" })
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(JWT_SECRET));
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export interface LoadResult {
  requestsPerSecond: number;
  /** Milliseconds (autocannon records whole milliseconds). */
  p50: number;
  p99: number;
  /** Requests not answered with the status expected (200 unless told): other statuses, failures and timeouts. */
  unexpected: number;
}

/**
 * `connections` connections for `seconds`, as fast as the server answers or at `overallRate`
 * requests per second in all. At a fixed rate each response's own latency is recorded
 * (autocannon's coordinated-omission correction would add made-up samples 1 ms apart).
 * Failed requests and other statuses than `status` (200 unless told) are reported as observations. With `stop`, the run
 * ends when it is aborted, `seconds` being only a bound.
 */
export async function load(
  name: string,
  options: {
    url: string;
    headers: Record<string, string>;
    seconds: number;
    connections: number;
    overallRate?: number;
    stop?: AbortSignal;
    /** The status every answer should have (304 for revalidations); 200 by default. */
    status?: number;
  },
): Promise<LoadResult> {
  const status = options.status ?? 200;
  const run = autocannon({
    url: options.url,
    headers: options.headers,
    connections: options.connections,
    duration: options.seconds,
    timeout: 10,
    ...(options.overallRate ? { overallRate: options.overallRate, ignoreCoordinatedOmission: true } : {}),
  });
  options.stop?.addEventListener("abort", () => run.stop(), { once: true });
  const result = await run;
  const otherStatus = result.requests.total - (result.statusCodeStats[String(status)]?.count ?? 0);
  if (result.errors || otherStatus)
    observe(
      name,
      `${result.errors} failed requests (${result.timeouts} timeouts), ${otherStatus} answers not ${status}`,
    );
  return {
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    unexpected: otherStatus + result.errors,
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Milliseconds from sending the request to the last byte of the body. */
  ms: number;
}

/** One GET on `agent` (keep-alive), the whole body read; bounded by `timeoutMs`. */
export function get(
  url: string,
  options: { headers?: Record<string, string>; agent?: http.Agent; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(
      url,
      { headers: options.headers, agent: options.agent, timeout: options.timeoutMs ?? 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.once("error", reject);
        res.once("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            ms: performance.now() - started,
          }),
        );
      },
    );
    request.once("timeout", () => request.destroy(new Error(`GET ${url}: no answer within the timeout`)));
    request.once("error", reject);
  });
}

/** A GET that must answer 200 with exactly `expectedBytes`; returns the time to the last byte. */
export async function timedRead(
  url: string,
  options: { headers?: Record<string, string>; agent: http.Agent; expectedBytes: number },
): Promise<number> {
  const answer = await get(url, { ...options, timeoutMs: 120_000 });
  if (answer.status !== 200 || answer.body.length !== options.expectedBytes)
    throw new Error(
      `GET ${url}: ${answer.status} with ${answer.body.length} bytes, not 200 with ${options.expectedBytes}`,
    );
  return answer.ms;
}

/** The value of one unlabelled metric in a Prometheus text page. */
export async function scrapeMetric(baseUrl: string, name: string): Promise<number | undefined> {
  return (await scrapeMetricSeries(baseUrl, name)).get("");
}

/** Every series of one metric, by its labels as written (`{source="cache"}`; "" for none). */
export async function scrapeMetricSeries(baseUrl: string, name: string): Promise<Map<string, number>> {
  const page = (await get(`${baseUrl}/metrics`, { timeoutMs: 10_000 })).body.toString();
  const series = new Map<string, number>();
  for (const [, labels, value] of page.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, "gm")))
    series.set(labels ?? "", Number(value));
  return series;
}
