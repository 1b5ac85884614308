// Bearer-token authentication: which owner is asking. Algorithms are pinned, so "alg: none" and
// algorithm-confusion tokens fail verification; `exp` is required, so no token is valid forever.
import { hash } from "node:crypto";
import { jwtVerify, type JWTHeaderParameters } from "jose";
import { idSchema } from "@keybox/contract";
import { queryApiMetrics as metrics } from "./metrics.ts";

export interface AuthSettings {
  secret: string;
  algorithms: string[];
  /** The claim that names the owner (KeyBox issues `userId`); `sub` is the fallback. */
  ownerClaim: string;
  /** How many verified tokens to remember (default 10,000; 0 turns the cache off). */
  cacheSize?: number;
  /** The clock, in milliseconds (for tests). */
  now?: () => number;
}

/** How long past its `exp` a token is still accepted: the issuer's clock may be a little off. */
const CLOCK_TOLERANCE_SECONDS = 30;
const DEFAULT_CACHE_SIZE = 10_000;

/** Who a verified token speaks for, and until when (its `exp`, in milliseconds). */
export interface VerifiedOwner {
  ownerId: string;
  expiresAtMs: number;
}

/**
 * The owner of an `Authorization` header, or undefined when it does not prove one: at once when
 * that is known without checking a signature (a token verified before and still within its `exp`,
 * or no bearer token at all), else once the signature is checked: a caller answers in the same turn
 * when it can, with one call either way.
 */
export type OwnerVerifier = (authorization: string | undefined) => OwnerAnswer | Promise<OwnerAnswer>;
type OwnerAnswer = VerifiedOwner | undefined;

const HASH_OF_ALGORITHM = new Map([
  ["HS256", "SHA-256"],
  ["HS384", "SHA-384"],
  ["HS512", "SHA-512"],
]);

/**
 * Verifies bearer tokens and names their owner.
 *
 * Verifying a signature costs more than the rest of a small request, so a verified token is
 * remembered — by its SHA-256, never the token itself — with its owner until its `exp` (not past
 * it, and not for the clock tolerance either), in a bounded cache that drops the oldest first.
 * The HMAC key is imported once per algorithm rather than per request.
 *
 * @example
 * const verifyOwner = createOwnerVerifier({ secret, algorithms: ["HS256"], ownerClaim: "userId" });
 * const owner = await verifyOwner(request.headers.authorization); // undefined: answer 401
 */
export function createOwnerVerifier(settings: AuthSettings): OwnerVerifier {
  const secret = new TextEncoder().encode(settings.secret);
  const keys = new Map(
    settings.algorithms.map((alg) => {
      const hash = HASH_OF_ALGORITHM.get(alg);
      if (!hash) throw new Error(`unsupported JWT algorithm ${alg}`);
      return [alg, crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, ["verify"])] as const;
    }),
  );
  // jose checks `alg` against `algorithms` before it asks for the key, so the key is always there.
  const keyFor = (header: JWTHeaderParameters) => keys.get(header.alg)!;
  const cacheSize = settings.cacheSize ?? DEFAULT_CACHE_SIZE;
  const now = settings.now ?? Date.now;
  const accepted = metrics.tokenVerifications.labels({ result: "accepted" });
  const refused = metrics.tokenVerifications.labels({ result: "refused" });
  const verified = new Map<string, VerifiedOwner>();
  const tokenOf = (authorization: string | undefined) =>
    /^Bearer[ ]+([A-Za-z0-9_.~+/=-]+)[ ]*$/i.exec(authorization ?? "")?.[1];
  const digestOf = (token: string) => hash("sha256", token, "base64");
  /** The cached owner of the token with `digest`, dropped once past its `exp`. */
  const rememberedBy = (digest: string) => {
    const known = verified.get(digest);
    if (known && now() < known.expiresAtMs) return known;
    if (known) verified.delete(digest);
    return undefined;
  };

  /** The owner a token's signature and claims prove, if any. */
  const ownerOf = async (token: string): Promise<OwnerAnswer> => {
    try {
      const { payload } = await jwtVerify(token, keyFor, {
        algorithms: settings.algorithms,
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(now()),
      });
      const claim = Object.hasOwn(payload, settings.ownerClaim) ? payload[settings.ownerClaim] : payload.sub;
      return idSchema.safeParse(claim).success
        ? { ownerId: claim as string, expiresAtMs: payload.exp! * 1000 }
        : undefined;
    } catch {
      return undefined;
    }
  };
  const verify = async (token: string, digest: string): Promise<OwnerAnswer> => {
    const owner = await ownerOf(token);
    (owner ? accepted : refused).inc();
    if (owner && cacheSize > 0) {
      if (verified.size >= cacheSize) verified.delete(verified.keys().next().value!);
      verified.set(digest, owner);
    }
    return owner;
  };

  return (authorization) => {
    const token = tokenOf(authorization);
    if (token === undefined) return undefined;
    if (cacheSize === 0) return verify(token, "");
    const digest = digestOf(token);
    return rememberedBy(digest) ?? verify(token, digest);
  };
}
