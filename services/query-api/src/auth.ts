// Bearer-token authentication: which owner is asking. Algorithms are pinned, so "alg: none" and
// algorithm-confusion tokens fail verification; `exp` is required, so no token is valid forever.
import { jwtVerify } from "jose";
import { idSchema } from "@keybox/contract";

export interface AuthSettings {
  secret: string;
  algorithms: string[];
  /** The claim that names the owner (KeyBox issues `userId`); `sub` is the fallback. */
  ownerClaim: string;
}

/** How long past its `exp` a token is still accepted: the issuer's clock may be a little off. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Resolves the owner id of an `Authorization` header, or undefined when it does not prove one. */
export type OwnerVerifier = (authorization: string | undefined) => Promise<string | undefined>;

export function createOwnerVerifier(settings: AuthSettings): OwnerVerifier {
  const key = new TextEncoder().encode(settings.secret);
  return async (authorization) => {
    const match = /^Bearer[ ]+([A-Za-z0-9_.~+/=-]+)[ ]*$/i.exec(authorization ?? "");
    if (!match) return undefined;
    try {
      const { payload } = await jwtVerify(match[1]!, key, {
        algorithms: settings.algorithms,
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      });
      const claim = Object.hasOwn(payload, settings.ownerClaim) ? payload[settings.ownerClaim] : payload.sub;
      return idSchema.safeParse(claim).success ? (claim as string) : undefined;
    } catch {
      return undefined;
    }
  };
}
