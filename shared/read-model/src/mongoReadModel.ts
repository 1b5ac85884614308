// The MongoDB read model's generations (see generations.ts): each generation's collections carry
// its prefix, and the control record is one document (`control`, `_id: "generations"`), changed
// only by a compare-and-set on its revision, so replicas racing to create a rebuild or to switch
// agree on one outcome. Readers poll it (CONTROL_POLL_MS) and move to a new current generation once
// they have opened it.
import { MongoError, type Collection, type Db, type MongoClient } from "mongodb";
import {
  checkDroppable,
  CurrentGenerationStore,
  generationName,
  generationStore,
  INITIAL_CONTROL,
  type ControlRecord,
  type ControlTransition,
  type ControlUpdate,
  type ReadModel,
} from "./generations.ts";
import { connectReplicaSet, databaseName, MongoDashboardStore, type MongoStoreOptions } from "./mongodb.ts";
import type { DashboardStore } from "./store.ts";

interface ControlDoc {
  _id: string;
  /** Grows with every write: the condition of the next. */
  rev: number;
  record: ControlRecord;
}

const CONTROL_ID = "generations";
/** How often a reader reads the control record: a switch reaches it within this (plus opening the generation). */
export const CONTROL_POLL_MS = 1000;
const DUPLICATE_KEY = 11000;
const NAMESPACE_NOT_FOUND = 26;
const COLLECTIONS = ["parts", "registers", "meta"];
const MAJORITY = { w: "majority" as const, wtimeoutMS: 10_000 };

export class MongoReadModel implements ReadModel {
  private readonly stores = new Map<number, Promise<DashboardStore>>();
  /** What readers use, as of the last poll (see current()). */
  private following: { generation: number; store: DashboardStore } | undefined;
  private poller: NodeJS.Timeout | undefined;

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    private readonly controlDocs: Collection<ControlDoc>,
    private readonly options: Pick<MongoStoreOptions, "readOnly" | "readPreference">,
  ) {}

  static async open(options: MongoStoreOptions): Promise<MongoReadModel> {
    const client = await connectReplicaSet(options);
    try {
      const db = client.db(databaseName(options));
      const model = new MongoReadModel(client, db, db.collection<ControlDoc>("control"), options);
      await model.generation((await model.control()).current.generation); // checks the format at start
      return model;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  private async controlDoc(): Promise<ControlDoc | null> {
    return this.controlDocs.findOne({ _id: CONTROL_ID });
  }

  async control(): Promise<ControlRecord> {
    return (await this.controlDoc())?.record ?? INITIAL_CONTROL;
  }

  async updateControl(transition: ControlTransition): Promise<ControlUpdate> {
    for (;;) {
      const doc = await this.controlDoc();
      const record = doc?.record ?? INITIAL_CONTROL;
      const next = transition(record);
      if (!next) return { record, changed: false };
      if (doc) {
        const written = await this.controlDocs.updateOne(
          { _id: CONTROL_ID, rev: doc.rev },
          { $set: { rev: doc.rev + 1, record: next } },
          { writeConcern: MAJORITY },
        );
        if (written.matchedCount === 1) return { record: next, changed: true };
      } else {
        try {
          await this.controlDocs.insertOne({ _id: CONTROL_ID, rev: 1, record: next }, { writeConcern: MAJORITY });
          return { record: next, changed: true };
        } catch (error) {
          if (!(error instanceof MongoError && error.code === DUPLICATE_KEY)) throw error;
        }
      }
      // Another replica wrote first: apply the transition to what it wrote.
    }
  }

  generation(n: number): Promise<DashboardStore> {
    let store = this.stores.get(n);
    if (!store) {
      store = MongoDashboardStore.openIn(this.client, this.db, { ...this.options, generation: n }).then((opened) =>
        generationStore(opened, n),
      );
      // A failed open is tried again on the next use.
      store.catch(() => this.stores.delete(n));
      this.stores.set(n, store);
    }
    return store;
  }

  async current(): Promise<DashboardStore> {
    await this.follow();
    this.poller ??= setInterval(() => void this.follow().catch(() => undefined), CONTROL_POLL_MS).unref();
    return new CurrentGenerationStore(
      () => this.following!.store,
      () => this.close(),
      false,
    );
  }

  /**
   * Reads the control record, and moves readers to its current generation once that is open.
   * Generations only ever move forward, so a slower poll never takes readers back.
   */
  private async follow(): Promise<void> {
    const { generation } = (await this.control()).current;
    if ((this.following?.generation ?? 0) >= generation) return;
    const store = await this.generation(generation);
    if ((this.following?.generation ?? 0) < generation) this.following = { generation, store };
  }

  async drop(n: number): Promise<void> {
    checkDroppable(await this.control(), n);
    this.stores.delete(n);
    for (const collection of COLLECTIONS) {
      await this.db
        .collection(generationName(collection, n))
        .drop()
        .catch((error: unknown) => {
          if (!(error instanceof MongoError && error.code === NAMESPACE_NOT_FOUND)) throw error;
        });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
    await this.client.close();
  }
}
