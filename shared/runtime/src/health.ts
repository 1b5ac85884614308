// What the health endpoints of both services share.

/** Readiness with the details that explain it, sent as the /readyz body. */
export type Readiness = { ready: boolean; [detail: string]: unknown };

/** Rejects when `promise` has not settled within `ms`: a health probe answers, it never hangs. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
