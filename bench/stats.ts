// Figures and their summaries: each figure is one value per round; the report gives its median and
// its spread (min–max), and a ratio to the baseline measured in the same rounds.

export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function summarize(values: number[]): Summary {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** The value below which `p` percent of `values` fall (nearest rank). */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

/** One line of the results table. */
export interface Figure {
  /** The row number, e.g. "1". */
  row: string;
  what: string;
  unit: string;
  /** One value per round. */
  measured: number[];
  /** The baseline's values, round by round beside `measured`. */
  baseline?: number[];
  baselineName?: string;
  /** One line saying what the ratio (measured ÷ baseline) means; present when there is a baseline. */
  ratioMeans?: string;
}

/** measured ÷ baseline, of the medians, and per round (each round's pair was measured back to back). */
export function ratios(figure: Figure): { ofMedians: number; perRound: Summary } | undefined {
  if (!figure.baseline?.length) return undefined;
  const perRound = figure.measured.map((value, i) => value / figure.baseline![i]!);
  return { ofMedians: median(figure.measured) / median(figure.baseline), perRound: summarize(perRound) };
}

/** A number as people read it: thousands separated, few decimals. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3;
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function formatSummary(values: number[]): string {
  const { median: m, min, max } = summarize(values);
  return values.length > 1 ? `${formatNumber(m)} (${formatNumber(min)}–${formatNumber(max)})` : formatNumber(m);
}
