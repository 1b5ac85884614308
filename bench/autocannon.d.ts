// The part of autocannon's API the benchmark uses (the package ships no types).
declare module "autocannon" {
  interface Options {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    headers?: Record<string, string>;
    /** Requests per second across all connections. */
    overallRate?: number;
    /** Record each response's own latency instead of correcting for the rate's schedule. */
    ignoreCoordinatedOmission?: boolean;
    /** Seconds before a request counts as timed out. */
    timeout?: number;
  }

  interface Distribution {
    average: number;
    min: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    total: number;
  }

  interface Result {
    /** Seconds the run really took. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    /** Answers by HTTP status code. */
    statusCodeStats: Record<string, { count: number }>;
    /** Milliseconds, whole numbers. */
    latency: Distribution;
    /** Per-second samples; `total` is the completed requests. */
    requests: Distribution;
  }

  /** A run in progress: awaited for its result; `stop()` ends it before its duration (within a second). */
  interface Instance extends PromiseLike<Result> {
    stop(): void;
  }

  function autocannon(options: Options): Instance;
  export default autocannon;
}
