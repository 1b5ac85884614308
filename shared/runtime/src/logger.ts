import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stdout, one logger per service. */
export function createLogger(name: string, level: string): Logger {
  return pino({ name, level });
}
