// Entry point: `npm run dlq -- <command>`, the operator's tool for the dead-letter stream. See
// README, "Dead letters". Exits 0 when done, 1 when NATS or a stream failed, 2 on a usage error.
import { parseArgs } from "node:util";
import { z } from "zod";
import { DEFAULT_DLQ_STREAM, DEFAULT_EVENTS_STREAM, idSchema } from "@keybox/contract";
import {
  ConfigError,
  connectNats,
  loadConfig,
  natsNameSetting,
  requireSetting,
  runtimeSettings,
} from "@keybox/runtime";
import {
  DEAD_LETTER_KINDS,
  getDeadLetter,
  readDeadLetters,
  replayDeadLetter,
  type DeadLetterFilter,
  type StoredDeadLetter,
} from "./adapters/deadLetters.ts";

const USAGE = `usage: npm run dlq -- <command> [options]
  list   [--owner ID] [--reason KIND] [--json]   the dead letters, oldest first
  show   SEQ [--json]                            one dead letter with its event
  replay SEQ | --owner ID | --reason KIND | --all [--dry-run]
                                                 publish the events again to the event stream and
                                                 remove the letters replayed
KIND is ${DEAD_LETTER_KINDS.join(", ")}. Settings: NATS_URL (required), EVENTS_STREAM, DLQ_STREAM.`;

const settings = z.object({
  ...runtimeSettings.shape,
  EVENTS_STREAM: natsNameSetting.default(DEFAULT_EVENTS_STREAM),
  DLQ_STREAM: natsNameSetting.default(DEFAULT_DLQ_STREAM),
});

class UsageError extends Error {
  override name = "UsageError";
}

const seqArgument = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);

interface Command {
  name: "list" | "show" | "replay";
  seq?: number;
  filter: DeadLetterFilter;
  all: boolean;
  json: boolean;
  dryRun: boolean;
}

function parseCommand(argv: string[]): Command {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      owner: { type: "string" },
      reason: { type: "string" },
      all: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const [name, seqText, ...extra] = positionals;
  if (name !== "list" && name !== "show" && name !== "replay")
    throw new UsageError(`unknown command: ${name ?? "(none)"}`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  const filter: DeadLetterFilter = {};
  if (values.owner !== undefined) {
    if (!idSchema.safeParse(values.owner).success) throw new UsageError(`--owner is not an id: ${values.owner}`);
    filter.ownerId = values.owner;
  }
  if (values.reason !== undefined) {
    const kind = DEAD_LETTER_KINDS.find((k) => k === values.reason);
    if (!kind) throw new UsageError(`--reason must be one of ${DEAD_LETTER_KINDS.join(", ")}`);
    filter.kind = kind;
  }
  let seq: number | undefined;
  if (seqText !== undefined) {
    const parsed = seqArgument.safeParse(seqText);
    if (!parsed.success) throw new UsageError(`not a sequence number: ${seqText}`);
    seq = parsed.data;
  }
  const filtered = filter.ownerId !== undefined || filter.kind !== undefined;
  if (name === "show" && (seq === undefined || filtered)) throw new UsageError("show takes one sequence number");
  if (name === "list" && seq !== undefined) throw new UsageError("list takes filters, not a sequence number");
  if (name === "replay" && [seq !== undefined, filtered, values.all].filter(Boolean).length !== 1)
    throw new UsageError("replay takes exactly one of: a sequence number, filters, or --all");
  return { name, seq, filter, all: values.all, json: values.json, dryRun: values["dry-run"] };
}

/** A letter as printed: JSON (with the event as text) or one line of the table. */
function describe(letter: StoredDeadLetter, json: boolean): string {
  const { seq, time, kind, reason, original, size, truncated } = letter;
  if (json) {
    const event = Buffer.from(letter.data).toString("utf8");
    return JSON.stringify({ seq, time: time.toISOString(), kind, reason, original, size, truncated, event });
  }
  const cut = truncated ? " (truncated)" : "";
  return [seq, time.toISOString(), kind ?? "-", `${original.subject}#${original.seq}`, `${size} B${cut}`, reason].join(
    "  ",
  );
}

async function main(): Promise<number> {
  let command: Command;
  let config: z.infer<typeof settings>;
  try {
    command = parseCommand(process.argv.slice(2));
    config = loadConfig(settings);
  } catch (error) {
    if (!(error instanceof UsageError || error instanceof ConfigError || error instanceof TypeError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  const nc = await connectNats(requireSetting(config, "NATS_URL", "to reach the dead-letter stream"), "keybox-dlq");
  try {
    const streams = { eventsStream: config.EVENTS_STREAM, dlqStream: config.DLQ_STREAM };
    const print = (line: string) => process.stdout.write(`${line}\n`);
    let letters: Iterable<StoredDeadLetter> | AsyncIterable<StoredDeadLetter>;
    if (command.seq === undefined) letters = readDeadLetters(nc, config.DLQ_STREAM, command.filter);
    else {
      const letter = await getDeadLetter(await nc.jetstreamManager(), config.DLQ_STREAM, command.seq);
      if (!letter) {
        process.stderr.write(`no dead letter ${command.seq} in ${config.DLQ_STREAM}\n`);
        return 1;
      }
      if (command.name === "show") {
        print(command.json ? describe(letter, true) : `${describe(letter, false)}\n${Buffer.from(letter.data)}`);
        return 0;
      }
      letters = [letter];
    }
    let count = 0;
    let kept = 0;
    for await (const letter of letters) {
      count++;
      if (command.name === "list") print(describe(letter, command.json));
      else if (command.dryRun) print(`would replay ${describe(letter, false)}`);
      else {
        const outcome = await replayDeadLetter(nc, streams, letter);
        if (outcome.replayed) print(`replayed ${outcome.seq} as ${config.EVENTS_STREAM}#${outcome.eventsSeq}`);
        else {
          kept++;
          print(`kept ${outcome.seq}: ${outcome.why}`);
        }
      }
    }
    const done = command.name === "list" ? "listed" : command.dryRun ? "would replay" : "replayed";
    process.stderr.write(`${count - kept} dead letter(s) ${done}${kept ? `, ${kept} kept` : ""}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`dlq failed: ${error.message}\n`);
    process.exit(1);
  },
);
