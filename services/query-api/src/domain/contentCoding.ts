// Which content coding a request accepts (RFC 9110 §12.5.3), as a pure function of its
// Accept-Encoding header. Only what a client explicitly accepts is ever sent compressed.

/** The compressed codings the query API produces. */
export type ContentCoding = "br" | "gzip";

/** Best first: brotli is the smaller at a similar cost, so it wins a tie. */
const PREFERENCE: readonly ContentCoding[] = ["br", "gzip"];

/** One element: a coding (a token) with an optional weight `;q=` from 0 to 1 with up to three decimals. */
const ELEMENT = /^([!#$%&'*+.^`|~\w-]+)(?:[ \t]*;[ \t]*q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?))?$/i;

/**
 * The weights a header gives, by coding (lowercase), the first mention of a coding counting;
 * undefined when the header is not a well-formed list.
 */
function weights(acceptEncoding: string): Map<string, number> | undefined {
  const byCoding = new Map<string, number>();
  for (const element of acceptEncoding.split(",")) {
    const trimmed = element.trim();
    if (trimmed === "") continue; // empty list elements are allowed
    const match = ELEMENT.exec(trimmed);
    if (!match) return undefined;
    const coding = match[1]!.toLowerCase();
    if (!byCoding.has(coding)) byCoding.set(coding, match[2] === undefined ? 1 : Number(match[2]));
  }
  return byCoding;
}

/**
 * Clients send a handful of distinct Accept-Encoding headers, each on every request; parsing one
 * took 0.84 µs in a tight loop, a sixth of a whole fast-path revalidation there. So the answers for
 * the latest few distinct headers are remembered: bounded in number and length, the oldest first
 * seen forgotten first, so that odd headers cost speed only, never memory.
 */
const codingByAcceptEncoding = new Map<string, ContentCoding | "identity">();
const REMEMBERED_HEADERS = 64;
const REMEMBERED_HEADER_MAX_LENGTH = 256;

/**
 * The coding to send a body in: the accepted compressed coding of highest weight (br on a tie),
 * unless identity is explicitly weighted higher. No header, an empty or malformed one, or one that
 * accepts neither br nor gzip gives "identity"; so does a header that refuses identity too
 * (`identity;q=0`): an uncompressed body is then still better than a 406.
 */
export function negotiateCoding(acceptEncoding: string | undefined): ContentCoding | "identity" {
  if (acceptEncoding === undefined) return "identity";
  let coding = codingByAcceptEncoding.get(acceptEncoding);
  if (coding === undefined) {
    coding = negotiate(acceptEncoding);
    if (acceptEncoding.length <= REMEMBERED_HEADER_MAX_LENGTH) {
      if (codingByAcceptEncoding.size >= REMEMBERED_HEADERS)
        codingByAcceptEncoding.delete(codingByAcceptEncoding.keys().next().value!);
      codingByAcceptEncoding.set(acceptEncoding, coding);
    }
  }
  return coding;
}

function negotiate(acceptEncoding: string): ContentCoding | "identity" {
  const given = weights(acceptEncoding);
  if (!given) return "identity";
  const any = given.get("*");
  const weightOf = (coding: ContentCoding) =>
    given.get(coding) ?? (coding === "gzip" ? given.get("x-gzip") : undefined) ?? any ?? 0;
  let best: ContentCoding | undefined;
  for (const coding of PREFERENCE) if (weightOf(coding) > (best ? weightOf(best) : 0)) best = coding;
  if (!best) return "identity";
  const identity = given.get("identity") ?? any;
  return identity !== undefined && identity > weightOf(best) ? "identity" : best;
}

/**
 * The coding a body of `byteLength` bytes is sent in, given the request's `negotiated` one: none
 * below `minBytes`, where compressing saves less than it costs.
 */
export function codingFor(
  byteLength: number,
  negotiated: ContentCoding | "identity",
  minBytes: number,
): ContentCoding | "identity" {
  return byteLength < minBytes ? "identity" : negotiated;
}
