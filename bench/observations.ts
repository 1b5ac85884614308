// What went wrong in the product while it was measured (warnings and errors it logged, early exits,
// failed requests, stalls), kept for the report. Repeats are counted, not listed again.

const seen = new Map<string, number>();
/** Enough to show a problem; a flood of one kind must not bloat the report. */
const MAX_KINDS = 60;
const MAX_TEXT = 400;

export function observe(source: string, text: string): void {
  const key = `${source}: ${text.trim().slice(0, MAX_TEXT)}`;
  const count = seen.get(key);
  if (count !== undefined) seen.set(key, count + 1);
  else if (seen.size < MAX_KINDS) seen.set(key, 1);
}

export function observations(): string[] {
  return [...seen].map(([text, count]) => (count > 1 ? `${text} (×${count})` : text));
}

/** pino writes JSON lines; level 40 is warn, 50 error, 60 fatal. Anything else on a line is kept too. */
export function observeLogLine(source: string, line: string): void {
  if (!line.trim()) return;
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
    if ((entry.level ?? 0) < 40) return;
    const level = entry.level === 40 ? "warn" : entry.level === 50 ? "error" : "fatal";
    observe(source, `${level}: ${entry.msg ?? ""}${entry.err?.message ? ` (${entry.err.message})` : ""}`);
  } catch {
    observe(source, line);
  }
}
