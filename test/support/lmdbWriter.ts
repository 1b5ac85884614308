// A process that commits large batches through the LMDB store, as a projector does, until it is
// killed, has made `commits` commits, or a commit fails (then it prints the error and exits with
// 1). Writes `committing <n>` before each commit and `committed <n>` once it resolved, each with a
// synchronous write to stdout, so that a trace of its system calls shows where a commit resolved.
// Arguments: the data folder, an owner, how many clients each commit writes (400 of about 3 KB make
// a commit of well over 500 pages, as a projector's large batch is), and how many commits (default:
// no end). Each commit writes the owner's clients, every one at version n: after a crash, a client
// at another version than its siblings is a commit half applied. For test/lmdbCrash.test.ts and
// test/lmdbStore.test.ts.
import { writeSync } from "node:fs";
import { partKey, type RecordWrite } from "../../shared/read-model/src/index.ts";
import { LmdbDashboardStore } from "../../shared/read-model/src/lmdb.ts";

const [dataDir, ownerId, clients, commits = "Infinity"] = process.argv.slice(2) as [string, string, string, string?];
const store = LmdbDashboardStore.open(dataDir);
const writes = (v: number): RecordWrite[] =>
  Array.from({ length: Number(clients) }, (_, c) => ({
    key: partKey(ownerId, `c${c}`),
    value: {
      kind: "client",
      client: {
        v,
        state: {
          id: `c${c}`,
          ownerId,
          name: "x".repeat(3000),
          email: `c${c}@x.io`,
          createdAt: "2024-01-01T00:00:00.000Z",
        },
      },
    },
    baseRev: 0,
  }));
try {
  for (let n = 1; n <= Number(commits); n++) {
    writeSync(1, `committing ${n}\n`);
    await store.commitInWriteTransaction(() => ({ writes: writes(n), reads: [] }), n);
    writeSync(1, `committed ${n}\n`);
  }
  await store.close();
} catch (error) {
  writeSync(1, `failed: ${(error as Error).message}\n`);
  process.exit(1);
}
