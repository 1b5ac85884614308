// The owner verifier on its own, with a controlled clock: it names the owner and the token's `exp`
// (a live stream ends there); remembered tokens never outlive their `exp`, and a remembered token
// does not vouch for a tampered copy of itself.
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createOwnerVerifier } from "@keybox/query-api";

const secret = "auth-test-secret-of-at-least-thirty-two-chars";
const T0 = Date.UTC(2026, 0, 1) / 1000;

async function token(claims: Record<string, unknown>, exp: number, alg = "HS256") {
  return new SignJWT(claims).setProtectedHeader({ alg }).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

function verifierAt(clock: { nowMs: number }, algorithms = ["HS256"]) {
  return createOwnerVerifier({ secret, algorithms, ownerClaim: "userId", now: () => clock.nowMs });
}

describe("the owner verifier", () => {
  it("accepts a token until 30 s past its exp, and a remembered token never past its exp", async () => {
    const clock = { nowMs: (T0 - 60) * 1000 };
    const verify = verifierAt(clock);
    const bearer = `Bearer ${await token({ userId: "owner1" }, T0)}`;
    const owner = { ownerId: "owner1", expiresAtMs: T0 * 1000 };
    expect(await verify(bearer)).toEqual(owner); // verified, and remembered with its exp
    clock.nowMs = (T0 - 1) * 1000;
    expect(await verify(bearer)).toEqual(owner);
    clock.nowMs = (T0 + 10) * 1000; // within the clock tolerance: verified again, accepted
    expect((await verify(bearer))?.ownerId).toBe("owner1");
    clock.nowMs = (T0 + 31) * 1000;
    expect(await verify(bearer)).toBeUndefined();
  });

  it("names a remembered token's owner at once, only once verified and never past its exp", async () => {
    const clock = { nowMs: (T0 - 60) * 1000 };
    const verify = verifierAt(clock);
    const bearer = `Bearer ${await token({ userId: "owner1" }, T0)}`;
    const first = verify(bearer);
    expect(first).toBeInstanceOf(Promise); // not verified yet: its signature is checked
    await first;
    expect(verify(bearer)).toEqual({ ownerId: "owner1", expiresAtMs: T0 * 1000 });
    const tampered = verify(`${bearer}x`);
    expect(tampered).toBeInstanceOf(Promise);
    expect(await tampered).toBeUndefined();
    expect(verify(undefined)).toBeUndefined(); // no token: nothing to check
    clock.nowMs = T0 * 1000; // at its exp: no longer vouched for without verifying again
    expect(verify(bearer)).toBeInstanceOf(Promise);
    const uncached = createOwnerVerifier({ secret, algorithms: ["HS256"], ownerClaim: "userId", cacheSize: 0 });
    await uncached(bearer);
    expect(uncached(bearer)).toBeInstanceOf(Promise);
  });

  it("does not let a remembered token vouch for a copy with another signature or payload", async () => {
    const clock = { nowMs: (T0 - 60) * 1000 };
    const verify = verifierAt(clock);
    const good = await token({ userId: "owner1" }, T0);
    expect((await verify(`Bearer ${good}`))?.ownerId).toBe("owner1");
    const [header, payload, signature] = good.split(".") as [string, string, string];
    const otherPayload = Buffer.from(JSON.stringify({ userId: "owner2", exp: T0 })).toString("base64url");
    const flipped = `${signature.slice(0, -2)}${signature.endsWith("AA") ? "BB" : "AA"}`;
    expect(await verify(`Bearer ${header}.${otherPayload}.${signature}`)).toBeUndefined();
    expect(await verify(`Bearer ${header}.${payload}.${flipped}`)).toBeUndefined();
  });

  it("keeps working when the cache is full, and with the cache turned off", async () => {
    const clock = { nowMs: (T0 - 60) * 1000 };
    const small = createOwnerVerifier({
      secret,
      algorithms: ["HS256"],
      ownerClaim: "userId",
      cacheSize: 2,
      now: () => clock.nowMs,
    });
    const off = createOwnerVerifier({
      secret,
      algorithms: ["HS256"],
      ownerClaim: "userId",
      cacheSize: 0,
      now: () => clock.nowMs,
    });
    for (let n = 0; n < 5; n++) {
      const bearer = `Bearer ${await token({ userId: `owner${n}` }, T0)}`;
      expect((await small(bearer))?.ownerId).toBe(`owner${n}`);
      expect((await small(bearer))?.ownerId).toBe(`owner${n}`);
      expect((await off(bearer))?.ownerId).toBe(`owner${n}`);
    }
  });

  it("verifies each configured algorithm with its own key, and refuses the others", async () => {
    const clock = { nowMs: (T0 - 60) * 1000 };
    const verify = verifierAt(clock, ["HS256", "HS512"]);
    expect((await verify(`Bearer ${await token({ userId: "a" }, T0, "HS256")}`))?.ownerId).toBe("a");
    expect((await verify(`Bearer ${await token({ userId: "b" }, T0, "HS512")}`))?.ownerId).toBe("b");
    expect(await verify(`Bearer ${await token({ userId: "c" }, T0, "HS384")}`)).toBeUndefined();
  });
});
