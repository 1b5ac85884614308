// The operator's dead-letter tool (`npm run dlq`), run as a process against a real nats-server and
// a real pipeline: what the projector dead-letters is listed, shown, and replayed into the event
// stream once, after which the projector applies it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishEvent } from "@keybox/contract";
import { deadLetter } from "../services/projector/src/adapters/deadLetters.ts";
import { clientCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";
import { spawnService } from "./support/process.ts";

const nats = useNats();
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
});
afterAll(async () => {
  await pipeline?.stop();
});

interface Run {
  code: number | NodeJS.Signals;
  stdout: string;
  stderr: string;
}

/** `npm run dlq -- <args>`, as the operator runs it (TypeScript entry point through tsx). */
async function dlq(...args: string[]): Promise<Run> {
  const run = spawnService("services/projector/src/dlq.ts", { NATS_URL: nats.url }, ["--import", "tsx"], args);
  let stdout = "";
  let stderr = "";
  run.child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  run.child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return { code: await run.exited, stdout, stderr };
}

interface Listed {
  seq: number;
  kind?: string;
  reason: string;
  original: { subject: string; stream: string; seq: number };
  size: number;
  truncated: boolean;
  event: string;
}

async function list(...filters: string[]): Promise<Listed[]> {
  const run = await dlq("list", "--json", ...filters);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Listed);
}

const owner = "dlqOwner";
const other = "dlqOther";
const maxPayload = () => pipeline.nc.info!.max_payload;

describe("npm run dlq", () => {
  it("lists, shows and replays dead letters, each once", async () => {
    const js = pipeline.nc.jetstream();
    // Dead-lettered by the projector itself: not JSON.
    await js.publish(`keybox.events.${owner}.client.created`, "not json");
    await eventually(async () => ((await list("--owner", owner)).length === 1 ? true : undefined));

    // What the projector writes when the store kept refusing a valid event, and when the copy
    // had to be cut to fit (written here: a store that refuses on demand is another test's).
    const refused = clientCreated(owner, "replayedClient", { name: "Back", email: "b@x.io" });
    const letter = (o: string, seq: number, kind: "store_refused" | "max_deliveries") => ({
      subject: `keybox.events.${o}.client.created`,
      seq,
      data: new TextEncoder().encode(JSON.stringify({ ...refused, ownerid: o, data: { ...refused.data, ownerId: o } })),
      kind,
      reason: "the read model refused it 8 times: disk quota",
    });
    await deadLetter(js, "KEYBOX_EVENTS", letter(owner, 900_001, "store_refused"), maxPayload());
    await deadLetter(js, "KEYBOX_EVENTS", letter(owner, 900_002, "max_deliveries"), 8 * 1024 + 10);
    await deadLetter(js, "KEYBOX_EVENTS", letter(other, 900_003, "store_refused"), maxPayload());

    const mine = await list("--owner", owner);
    expect(mine.map((l) => [l.kind, l.original.seq, l.truncated])).toEqual([
      ["invalid", expect.any(Number), false],
      ["store_refused", 900_001, false],
      ["max_deliveries", 900_002, true],
    ]);
    expect(mine[0]!.event).toBe("not json");
    expect(mine[2]!.size).toBeGreaterThan(10);
    expect(mine[2]!.event).toHaveLength(10);
    expect((await list("--reason", "store_refused")).map((l) => l.original.subject)).toEqual([
      `keybox.events.${owner}.client.created`,
      `keybox.events.${other}.client.created`,
    ]);

    const shown = await dlq("show", String(mine[1]!.seq));
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("store_refused");
    expect(shown.stdout).toContain('"replayedClient"');

    const eventsBefore = (await (await pipeline.nc.jetstreamManager()).streams.info("KEYBOX_EVENTS")).state.last_seq;
    const replayed = await dlq("replay", "--owner", owner, "--reason", "store_refused");
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toMatch(new RegExp(`^replayed ${mine[1]!.seq} as KEYBOX_EVENTS#${eventsBefore + 1}$`, "m"));

    // The projector applies the replayed event.
    const token = await tokenFor({ sub: owner });
    const body = await eventually(async () => {
      const res = await httpGet(`${pipeline.api.url}/dashboard`, { headers: bearer(token) });
      const parsed = res.body as { clientsCount: number; data: { _id: string }[] };
      return parsed.clientsCount === 1 ? parsed : undefined;
    });
    expect(body.data[0]!._id).toBe("replayedClient");

    // Replaying again changes nothing: the letter is gone, the event stream does not grow.
    const again = await dlq("replay", "--owner", owner, "--reason", "store_refused");
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("0 dead letter(s) replayed");
    const jsm = await pipeline.nc.jetstreamManager();
    expect((await jsm.streams.info("KEYBOX_EVENTS")).state.last_seq).toBe(eventsBefore + 1);
    expect((await list("--owner", owner)).map((l) => l.kind)).toEqual(["invalid", "max_deliveries"]);

    // A truncated letter cannot be replayed whole: it is kept and says why.
    const truncated = await dlq("replay", String(mine[2]!.seq));
    expect(truncated.code).toBe(0);
    expect(truncated.stdout).toMatch(/^kept \d+: truncated: only 10 of \d+ bytes were kept$/m);
    expect((await list("--owner", owner)).map((l) => l.kind)).toEqual(["invalid", "max_deliveries"]);
    await publishEvent(js, clientCreated(other, "untouched"));
  });

  it("replays only the letters there at start, though replayed events fail and are dead-lettered again", async () => {
    const owner = "dlqAgain";
    const js = pipeline.nc.jetstream();
    const count = 300; // more than one page of the read
    for (let i = 0; i < count; i++) await js.publish(`keybox.events.${owner}.client.created`, `still not json ${i}`);
    await eventually(async () => ((await list("--owner", owner)).length === count ? true : undefined), 30_000);
    const replay = await dlq("replay", "--owner", owner);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stderr).toContain(`${count} dead letter(s) replayed`);
    // The projector dead-letters each copy again: as many letters as before, all new.
    const again = await eventually(async () => {
      const letters = await list("--owner", owner);
      return letters.length === count ? letters : undefined;
    }, 30_000);
    expect(again.every((l) => l.kind === "invalid")).toBe(true);
  });

  it("explains bad usage and a missing letter", async () => {
    for (const args of [
      [],
      ["list", "5"],
      ["list", "--reason", "bogus"],
      ["show"],
      ["show", "x1"],
      ["replay"],
      ["replay", "3", "--all"],
      ["list", "--owner", "a.b"],
      ["list", "--nope"],
    ]) {
      const run = await dlq(...args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toContain("usage: npm run dlq");
    }
    const missing = await dlq("show", "999999");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no dead letter 999999 in KEYBOX_DLQ");
  });
});
