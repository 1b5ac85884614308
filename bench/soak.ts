// `npm run soak -- --minutes N [--rate EVENTS_PER_S] [--owners N] [--seed N]`: the whole product
// under faults for N minutes, then checked against a reference. Events are published at a fixed
// rate over many owners, with duplicates, reordering and poison events, while two projectors are
// SIGKILLed and restarted and the nats-server is restarted at random, and reads run throughout. At
// the end it drains, compares every owner's dashboard with one computed from the published events,
// and prints the figures; it exits 1 when anything that must be 0 is not.
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { headers, type NatsConnection } from "nats";
import { type Envelope, ensureStreams, publishEvent } from "@keybox/contract";
import { connectNats } from "@keybox/runtime";
import { buildServices } from "../scripts/build.mjs";
import { freePort, startLocalNats, type LocalNats } from "../scripts/natsServer.ts";
import { readDeadLetters } from "../services/projector/src/adapters/deadLetters.ts";
import { randomHistory, seededRandom } from "../test/support/history.ts";
import { toEvent } from "../test/support/inMemory.ts";
import { referenceDashboard } from "../test/support/reference.ts";
import { cleanUp, installExitHandlers, makeTempDir, onCleanup, trackChild, trackTempDir } from "./cleanup.ts";
import { bearer, get, scrapeMetric, tokenFor } from "./http.ts";
import { EVENTS_STREAM } from "./jetstream.ts";
import { observations } from "./observations.ts";
import { startProjector, startQueryApi, waitUntilReady, type Running } from "./services.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DURABLE = "dashboard-projector";
const DLQ_STREAM = "KEYBOX_DLQ";

interface SoakOptions {
  minutes: number;
  rate: number;
  owners: number;
  seed: number;
}

function parseOptions(argv: string[]): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      minutes: { type: "string", default: "5" },
      rate: { type: "string", default: "200" },
      owners: { type: "string", default: "200" },
      seed: { type: "string", default: "20261128" },
    },
  });
  const positive = (name: string, text: string, max: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new Error(`--${name} must be a number in (0, ${max}]`);
    return n;
  };
  return {
    minutes: positive("minutes", values.minutes, 7 * 24 * 60),
    rate: Math.round(positive("rate", values.rate, 5000)),
    owners: Math.round(positive("owners", values.owners, 100_000)),
    seed: Math.round(positive("seed", values.seed, 2 ** 31)),
  };
}

/**
 * A connection per read: a kept-alive socket that the server closes as it idles out can meet the
 * next request on the way ("socket hang up"), a client-side race that would count as a failed read.
 */
const noReuse = new http.Agent({ keepAlive: false });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What happened, for the report. */
const tally = {
  duplicates: 0,
  poison: 0,
  publishRetries: 0,
  reads: 0,
  nonOkReads: 0,
  projectorKills: 0,
  natsRestarts: 0,
  /** Counters of projector incarnations already gone (their last scrape). */
  appliedBefore: 0,
  receivedBefore: 0,
};

/** Publishes until JetStream acknowledges, through NATS restarts (the event id deduplicates retries). */
async function publishSurely(publish: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await publish();
      return;
    } catch {
      tally.publishRetries++;
      await sleep(Math.min(2000, 100 * 2 ** attempt));
    }
  }
}

/** A valid event delivered twice: a new message id, so JetStream keeps both and the projector sees both. */
function duplicate(nc: NatsConnection, envelope: Envelope): Promise<unknown> {
  const [, entity, action] = envelope.type.split(".");
  const h = headers();
  h.set("Nats-Msg-Id", `${envelope.id}-again`);
  return nc.jetstream().publish(`keybox.events.${envelope.ownerid}.${entity}.${action}`, JSON.stringify(envelope), {
    headers: h,
  });
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  installExitHandlers();
  const started = Date.now();
  const log = (message: string) =>
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${message}\n`);
  const workDir = makeTempDir("keybox-soak-");
  const distDir = await buildServices(
    trackTempDir(path.join(REPO_ROOT, "node_modules", ".cache", `keybox-soak-${process.pid}`)),
  );

  // A nats-server of our own on a fixed port, so that a restarted one is found again.
  const natsPort = await freePort();
  const natsDir = path.join(workDir, "nats");
  let nats: LocalNats = await startLocalNats(natsDir, natsPort);
  trackChild(nats.process);
  onCleanup("nats-server", () => nats.stop());
  const natsUrl = nats.url;
  const nc = await connectNats(natsUrl, "keybox-soak");
  onCleanup("soak NATS connection", () => nc.close());
  await ensureStreams(nc, { eventsStream: EVENTS_STREAM, dlqStream: DLQ_STREAM });

  const setup = { natsUrl, distDir };
  const dataDir = path.join(workDir, "data");
  const startReplica = (n: number) => startProjector(setup, { name: `projector ${n}`, dataDir, durable: DURABLE });
  const projectors: Running[] = [await startReplica(0), await startReplica(1)];
  const api = await startQueryApi(setup, { name: "query API", dataDir });
  for (const projector of projectors) await waitUntilReady(projector);

  const owners = Array.from({ length: options.owners }, (_, i) => `soak${i}`);
  const total = Math.round(options.rate * options.minutes * 60);
  const history = randomHistory({ seed: options.seed, owners, events: total });
  const random = seededRandom(options.seed + 1);
  const tokens = new Map<string, string>();
  for (const owner of owners) tokens.set(owner, await tokenFor(owner));
  log(
    `${total.toLocaleString("en-US")} events at ${options.rate}/s over ${options.owners} owners, ${options.minutes} ` +
      `min`,
  );

  let publishing = true;
  const sent: Envelope[] = [];
  const publisher = (async () => {
    const window = 20;
    const begin = performance.now();
    for (let i = 0; i < history.length && publishing; i += window) {
      // Reordering: each window goes out shuffled.
      const batch = history.slice(i, i + window).sort(() => random() - 0.5);
      for (const envelope of batch) {
        await publishSurely(() => publishEvent(nc.jetstream(), envelope));
        sent.push(envelope);
        if (random() < 0.05) {
          await publishSurely(() => duplicate(nc, envelope));
          tally.duplicates++;
        }
        if (random() < 0.01) {
          const owner = envelope.ownerid;
          await publishSurely(() => nc.jetstream().publish(`keybox.events.${owner}.client.updated`, "{not json"));
          tally.poison++;
        }
      }
      const due = begin + ((i + window) / options.rate) * 1000;
      if (due > performance.now()) await sleep(due - performance.now());
    }
  })();

  let reading = true;
  const readers = Array.from({ length: 4 }, async () => {
    while (reading) {
      const owner = owners[Math.floor(random() * owners.length)]!;
      try {
        const res = await get(`${api.baseUrl}/dashboard`, {
          headers: bearer(tokens.get(owner)!),
          agent: noReuse,
          timeoutMs: 10_000,
        });
        if (res.status !== 200) tally.nonOkReads++;
      } catch {
        tally.nonOkReads++;
      }
      tally.reads++;
      await sleep(20);
    }
  });

  /** What a projector counted so far; kept when it is killed, so the totals survive restarts. */
  const lastCounts = new Map<Running, { applied: number; received: number }>();
  const scrapeCounts = async (projector: Running) => {
    const applied = await scrapeMetric(projector.baseUrl, "keybox_projector_events_applied_total").catch(
      () => undefined,
    );
    const received = await scrapeMetric(projector.baseUrl, "keybox_projector_events_received_total").catch(
      () => undefined,
    );
    if (applied !== undefined && received !== undefined) lastCounts.set(projector, { applied, received });
  };

  const chaosUntil = started + options.minutes * 60_000;
  while (Date.now() < chaosUntil) {
    await sleep(10_000 + random() * 20_000);
    if (Date.now() >= chaosUntil) break;
    if (random() < 0.6) {
      const n = Math.floor(random() * projectors.length);
      const victim = projectors[n]!;
      await scrapeCounts(victim);
      await victim.kill();
      tally.appliedBefore += lastCounts.get(victim)?.applied ?? 0;
      tally.receivedBefore += lastCounts.get(victim)?.received ?? 0;
      lastCounts.delete(victim);
      tally.projectorKills++;
      log(`SIGKILLed projector ${n}`);
      await sleep(1000 + random() * 2000);
      projectors[n] = await startReplica(n);
    } else {
      await nats.stop();
      tally.natsRestarts++;
      log("nats-server stopped");
      await sleep(2000 + random() * 3000);
      nats = await startLocalNats(natsDir, natsPort);
      trackChild(nats.process);
      log("nats-server started again");
    }
    log(
      `published ${sent.length.toLocaleString("en-US")} (+${tally.duplicates} duplicates, ${tally.poison} poison), ` +
        `reads ${tally.reads.toLocaleString("en-US")} (non-200: ${tally.nonOkReads})`,
    );
  }
  publishing = false;
  await publisher;
  log("publishing done; waiting for the projectors to drain");

  const jsm = await nc.jetstreamManager();
  const lastSeq = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  let ackFloor = 0;
  const drainDeadline = Date.now() + 10 * 60_000;
  while (Date.now() < drainDeadline) {
    ackFloor = (await jsm.consumers.info(EVENTS_STREAM, DURABLE).catch(() => undefined))?.ack_floor.stream_seq ?? 0;
    if (ackFloor >= lastSeq) break;
    await sleep(500);
  }
  reading = false;
  await Promise.all(readers);
  for (const projector of projectors) await scrapeCounts(projector);

  const letters = { invalid: 0, other: 0 };
  for await (const letter of readDeadLetters(nc, DLQ_STREAM))
    letters[letter.kind === "invalid" ? "invalid" : "other"]++;

  const published = sent.map(toEvent);
  let differing = 0;
  for (const owner of owners) {
    const expected = JSON.parse(JSON.stringify(referenceDashboard(published, owner, new Date())));
    const answer = await get(`${api.baseUrl}/dashboard`, { headers: bearer(tokens.get(owner)!), agent: noReuse }).then(
      (res) => (res.status === 200 ? JSON.parse(res.body.toString()) : `status ${res.status}`),
      (error: Error) => error.message,
    );
    if (!isDeepStrictEqual(answer, expected)) {
      differing++;
      const why = typeof answer === "string" ? ` (${answer})` : "";
      if (differing <= 3) log(`${owner}: the dashboard differs from the reference${why}`);
    }
  }
  const counted = [...lastCounts.values()].reduce(
    (sum, c) => ({ applied: sum.applied + c.applied, received: sum.received + c.received }),
    { applied: tally.appliedBefore, received: tally.receivedBefore },
  );
  // Lost: events the stream holds that were never acknowledged, and valid events dead-lettered.
  const lost = Math.max(0, lastSeq - ackFloor) + letters.other + Math.max(0, letters.invalid - tally.poison);
  const figures: [string, number | string][] = [
    ["minutes", options.minutes],
    ["events published (distinct, valid)", sent.length],
    ["duplicates published (new message id)", tally.duplicates],
    ["poison events published", tally.poison],
    ["publish retries (NATS down)", tally.publishRetries],
    ["projector SIGKILLs", tally.projectorKills],
    ["nats-server restarts", tally.natsRestarts],
    ["events delivered to projectors (incl. redeliveries)", counted.received],
    ["events applied (changed the read model)", counted.applied],
    [
      "events superseded (duplicates, stale versions, redeliveries)",
      counted.received - counted.applied - letters.invalid,
    ],
    ["dead-lettered as invalid (expected: the poison events)", letters.invalid],
    ["lost (must be 0)", lost],
    ["reads", tally.reads],
    ["reads not answered 200 (must be 0)", tally.nonOkReads],
    [`dashboards differing from the reference, of ${owners.length} (must be 0)`, differing],
  ];
  const table = figures.map(([name, value]) => `| ${name} | ${value.toLocaleString("en-US")} |`);
  const logged = observations().map((seen) => `- ${seen}`);
  process.stdout.write(
    [
      "",
      `KeyBox read model soak run, ${new Date().toISOString()}`,
      "",
      "| figure | value |",
      "| --- | --- |",
      ...table,
      "",
      ...(logged.length ? ["What the services logged as warnings or errors, and early exits:", ...logged, ""] : []),
      "Applied and delivered counts come from the projectors' counters, scraped before each kill and at the end:",
      "a killed incarnation's last moments are not counted, so they are approximate; the must-be-0 figures are exact.",
      "",
    ].join("\n"),
  );
  return lost === 0 && tally.nonOkReads === 0 && differing === 0 ? 0 : 1;
}

main()
  .then(async (code) => {
    await cleanUp();
    process.exit(code);
  })
  .catch(async (error: Error) => {
    process.stderr.write(`soak failed: ${error.stack ?? error.message}\n`);
    for (const seen of observations()) process.stderr.write(`- ${seen}\n`);
    await cleanUp();
    process.exit(1);
  });
