// The LMDB read model's generations (see generations.ts). Every generation's databases and the
// control record live in one environment: a reader checks the control record in the same read
// snapshot it then reads the dashboard from, and creating a rebuild or switching readers is one
// write transaction (one writer at a time, across processes).
import type { Database, RootDatabase } from "lmdb";
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
import { committed, LmdbDashboardStore, openLmdbEnv } from "./lmdb.ts";
import type { DashboardStore } from "./store.ts";

/** In the `control` database: the record, and beside it the current generation's number, which every read checks. */
const RECORD = "record";
const CURRENT = "current";
const TABLES = ["parts", "registers", "fragments", "meta"];

export class LmdbReadModel implements ReadModel {
  private readonly stores = new Map<number, DashboardStore>();

  private constructor(
    private readonly env: RootDatabase,
    private readonly dir: string,
    private readonly controlDb: Database<ControlRecord | number, string>,
    private readonly readOnly: boolean,
  ) {}

  /** `readOnly`: a reader, which never records a generation's format (see LmdbDashboardStore.open). */
  static open(dataDir: string, { readOnly = false }: { readOnly?: boolean } = {}): LmdbReadModel {
    const { env, dir } = openLmdbEnv(dataDir);
    try {
      const model = new LmdbReadModel(env, dir, env.openDB({ name: "control" }), readOnly);
      model.generationNow(model.currentNow()); // a store in another format is refused at start
      return model;
    } catch (error) {
      void env.close();
      throw error;
    }
  }

  /** One small read, in the caller's read snapshot. */
  private currentNow(): number {
    return (this.controlDb.get(CURRENT) as number | undefined) ?? INITIAL_CONTROL.current.generation;
  }

  private generationNow(n: number): DashboardStore {
    let store = this.stores.get(n);
    if (!store) {
      store = generationStore(
        LmdbDashboardStore.openIn(this.env, this.dir, { readOnly: this.readOnly, generation: n }),
        n,
      );
      this.stores.set(n, store);
    }
    return store;
  }

  private record(): ControlRecord {
    return (this.controlDb.get(RECORD) as ControlRecord | undefined) ?? INITIAL_CONTROL;
  }

  async control(): Promise<ControlRecord> {
    return this.record();
  }

  async updateControl(transition: ControlTransition): Promise<ControlUpdate> {
    const update = await committed(
      this.env.transaction(() => {
        const record = this.record();
        const next = transition(record);
        if (!next) return { record, changed: false };
        this.controlDb.putSync(RECORD, next);
        this.controlDb.putSync(CURRENT, next.current.generation);
        return { record: next, changed: true };
      }),
    );
    await this.env.flushed;
    return update;
  }

  async generation(n: number): Promise<DashboardStore> {
    return this.generationNow(n);
  }

  async current(): Promise<DashboardStore> {
    return new CurrentGenerationStore(
      () => this.generationNow(this.currentNow()),
      () => this.close(),
      true,
    );
  }

  async drop(n: number): Promise<void> {
    checkDroppable(this.record(), n);
    this.stores.delete(n);
    // A read snapshot taken before keeps seeing the data; LMDB frees its pages once none does.
    // Only the databases still there, looked up in the same write transaction: replicas drop a
    // retired generation at about the same time, and dropping what another has dropped fails.
    const names = TABLES.map((table) => generationName(table, n));
    await committed(
      this.env.transaction(() => {
        const existing = new Set(this.env.getKeys());
        for (const name of names) if (existing.has(name)) this.env.openDB({ name }).dropSync();
      }),
    );
    await this.env.flushed;
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}
