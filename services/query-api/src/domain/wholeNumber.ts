// Numbers that arrive as text (minSeq, limit, Last-Event-ID, an ETag's validity): one reading of
// them, so that every one refuses signs, exponents, fractions, spaces and leading zeros alike.

const DIGITS = /^(?:0|[1-9][0-9]{0,15})$/;

/** A whole number in plain decimal digits, at most 2^53 - 1; undefined for anything else. */
export function parseWholeNumber(text: string): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
