// The projector over the read model's generations (README, "Rebuild"). It runs the current
// generation's projector and, while a rebuild by this release's projection version is under way, a
// second one that fills the new generation from the whole stream on a durable consumer of its own.
// Every replica does the same, so replicas share both consumers' work. Once the rebuild's consumer
// has nothing pending or unacknowledged, a replica switches readers over with one conditional write
// of the control record (only one write wins); every replica then moves to the new generation, and
// a grace period later the old generation's data and consumer are dropped.
import type { NatsConnection } from "nats";
import { isNotFound } from "@keybox/contract";
import {
  forgetRetired,
  generationDurable,
  isBrokenStore,
  requestRebuild,
  switchTo,
  upgradeTo,
  type ControlRecord,
  type ReadModel,
} from "@keybox/read-model";
import type { Logger } from "@keybox/runtime";
import { sampleProgress, type RebuildProgress } from "./domain/rebuildProgress.ts";
import { projectorMetrics as metrics } from "./metrics.ts";
import { Projector, type ProjectorConfig, type ProjectorReadiness } from "./projector.ts";

export interface GenerationsOptions {
  /** The version of this release's projection rules (PROJECTION_VERSION, or a test's). */
  projectionVersion: number;
  /**
   * "serve": the projector service, which keeps the current generation up to date and takes part
   * in rebuilds. "rebuild": `npm run rebuild`, which asks for a rebuild, takes part in it, and
   * finishes once readers use the new generation and the old one is dropped.
   */
  mode: "serve" | "rebuild";
}

/** How often the control record is read, and the rebuild's progress sampled. */
const CHECK_MS = 1000;
/**
 * A retired generation is dropped this long after readers left it: MongoDB readers follow the
 * control record within a poll (1 s), and reads begun before the switch have finished.
 */
export const DROP_GRACE_MS = 10_000;

interface Running {
  generation: number;
  projector: Projector;
}

export type GenerationsReadiness = ProjectorReadiness & {
  generation: number;
  rebuild?: { generation: number; replayed: number; left: number };
};

const inUse = (record: ControlRecord, generation: number) =>
  record.current.generation === generation || record.building?.generation === generation;

export class ProjectorGenerations {
  private serving: Running | undefined;
  private building: Running | undefined;
  private record: ControlRecord | undefined;
  private progress: RebuildProgress | undefined;
  /** In "rebuild" mode: the generation asked for. */
  private target: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Checks and moves run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private fail: (error: Error) => void = () => {};
  /** Resolves when the projector cannot go on: a consumer of a generation in use is gone. */
  readonly failed = new Promise<Error>((resolve) => (this.fail = resolve));
  private finish: () => void = () => {};
  /** In "rebuild" mode: resolves once readers use the new generation and the old one is dropped. */
  readonly finished = new Promise<void>((resolve) => (this.finish = resolve));

  constructor(
    private readonly nc: NatsConnection,
    private readonly readModel: ReadModel,
    private readonly config: ProjectorConfig,
    private readonly log: Logger,
    private readonly options: GenerationsOptions,
  ) {}

  async start(): Promise<void> {
    const { projectionVersion, mode } = this.options;
    const now = Date.now();
    const { record, changed } = await this.readModel.updateControl(
      mode === "rebuild" ? requestRebuild(projectionVersion, now) : upgradeTo(projectionVersion, now),
    );
    const { current, building } = record;
    if (current.projectionVersion > projectionVersion) {
      const message =
        `the read model was built by projection version ${current.projectionVersion}, ` +
        `newer than this release's ${projectionVersion}`;
      if (mode === "rebuild") throw new Error(`${message}: rebuild with the newer release`);
      this.log.warn({ current }, `${message}; applying events to it with this release's rules`);
    }
    if (mode === "rebuild") {
      if (building?.projectionVersion !== projectionVersion) {
        throw new Error(
          `a rebuild by projection version ${building?.projectionVersion} (a newer release) is under way`,
        );
      }
      this.target = building.generation;
    }
    if (changed) this.log.info({ current, building }, "rebuild requested");
    else if (building) this.log.info({ current, building }, "a rebuild is under way; taking part");
    // Directly, not as a check: a projector that cannot start fails the start, as it always has.
    await this.reconcile(record);
    this.timer = setInterval(() => void this.serialized(() => this.check()), CHECK_MS);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.queue;
    await Promise.all([this.serving?.projector.stop(), this.building?.projector.stop()]);
  }

  async readiness(): Promise<GenerationsReadiness> {
    const generation = this.record?.current.generation ?? 0;
    // Without a projector of the current generation (between two, or starting one failed) it is not ready.
    const serving: ProjectorReadiness = this.serving
      ? await this.serving.projector.readiness()
      : { ready: false, nats: this.nc.isClosed() ? "disconnected" : "connected", consumer: "missing", store: "ok" };
    const rebuild =
      this.building && this.progress
        ? { generation: this.building.generation, replayed: this.progress.replayed, left: this.progress.left }
        : undefined;
    return rebuild ? { ...serving, generation, rebuild } : { ...serving, generation };
  }

  private serialized(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.stopping) return;
      try {
        await step();
      } catch (error) {
        if (isBrokenStore(error)) {
          this.log.fatal(
            { err: error },
            "the read model's environment is broken; stopping so that a supervisor restarts the projector",
          );
          this.fail(error as Error);
          return;
        }
        this.log.error({ err: error }, "read-model generations: a check failed; trying again");
      }
    });
    this.queue = next;
    return next;
  }

  /** Reads the control record and does what it asks: follow a switch, watch a rebuild, drop what is retired. */
  private async check(): Promise<void> {
    await this.reconcile(await this.readModel.control());
    if (this.building) await this.watchRebuild(this.building.generation);
    await this.dropRetired();
    const record = this.record!;
    if (this.target === undefined) return;
    if (record.current.generation === this.target && record.retired.length === 0) this.finish();
    else if (record.current.generation !== this.target && record.building?.generation !== this.target)
      this.fail(new Error(`the rebuild of generation ${this.target} was replaced by another (a newer release's)`));
  }

  /** Runs the projectors `record` asks for: the current generation's (when serving), and the rebuild's. */
  private async reconcile(record: ControlRecord): Promise<void> {
    this.record = record;
    metrics.readModelGeneration.set(record.current.generation);
    metrics.rebuildGeneration.set(record.building?.generation ?? 0);
    const servingWanted = this.options.mode === "serve" ? record.current.generation : undefined;
    const buildingWanted =
      record.building?.projectionVersion === this.options.projectionVersion ? record.building.generation : undefined;
    // The rebuild's projector first: after a switch its consumer becomes the current generation's.
    if (this.building && this.building.generation !== buildingWanted) {
      const { generation, projector } = this.building;
      this.building = undefined;
      this.progress = undefined;
      for (const gauge of [metrics.rebuildEventsReplayed, metrics.rebuildEventsLeft, metrics.rebuildEventsPerSecond])
        gauge.set(0);
      await projector.stop();
      this.log.info({ generation }, "stopped rebuilding");
    }
    if (this.serving && this.serving.generation !== servingWanted) {
      const { generation } = this.serving;
      await this.serving.projector.stop();
      this.serving = undefined;
      this.log.info({ generation, now: servingWanted }, "left a read-model generation readers no longer use");
    }
    if (servingWanted !== undefined && !this.serving) this.serving = await this.run(servingWanted, false);
    if (buildingWanted !== undefined && !this.building) {
      this.building = await this.run(buildingWanted, true);
      this.log.info({ building: record.building }, "rebuilding the read model from the whole stream");
    }
  }

  private async run(generation: number, rebuild: boolean): Promise<Running> {
    const durable = generationDurable(this.config.PROJECTOR_DURABLE, generation);
    const store = await this.readModel.generation(generation);
    const projector = new Projector(this.nc, store, { ...this.config, PROJECTOR_DURABLE: durable }, this.log, {
      rebuild,
    });
    await projector.start();
    const running = { generation, projector };
    void projector.failed.then((error) => this.serialized(() => this.lost(running, error)));
    return running;
  }

  /**
   * A projector's consumer is gone. After a switch (or a replaced rebuild) that is expected: the
   * generation is no longer used, and the projector moves on. Otherwise the process ends, as it
   * always has: its supervisor starts it again, and the new process creates the consumer.
   */
  private async lost(running: Running, error: Error): Promise<void> {
    if (running !== this.serving && running !== this.building) return;
    const record = await this.readModel.control();
    if (!inUse(record, running.generation)) {
      this.log.info({ generation: running.generation }, "a retired generation's consumer was deleted; moving on");
      return this.reconcile(record);
    }
    this.log.fatal({ err: error }, "the event consumer is gone; stopping so that a supervisor restarts the projector");
    this.fail(error);
  }

  /** Samples the rebuild's consumer: logs and exports its progress, and switches readers once it has caught up. */
  private async watchRebuild(generation: number): Promise<void> {
    const jsm = await this.nc.jetstreamManager();
    const { EVENTS_STREAM, PROJECTOR_DURABLE } = this.config;
    const [consumer, stream] = await Promise.all([
      jsm.consumers.info(EVENTS_STREAM, generationDurable(PROJECTOR_DURABLE, generation)),
      jsm.streams.info(EVENTS_STREAM),
    ]);
    const left = consumer.num_pending + consumer.num_ack_pending;
    const replayed = Math.max(0, stream.state.messages - left);
    const { progress, log } = sampleProgress(this.progress, this.record?.building?.since, {
      at: Date.now(),
      replayed,
      left,
    });
    this.progress = progress;
    metrics.rebuildEventsReplayed.set(replayed);
    metrics.rebuildEventsLeft.set(left);
    const { eventsPerSecond } = progress;
    if (eventsPerSecond !== undefined) metrics.rebuildEventsPerSecond.set(eventsPerSecond);
    if (log) this.log.info({ generation, replayed, left, eventsPerSecond }, "rebuild progress");
    // Everything in the stream when the consumer was read is applied to the new generation: it
    // holds all the current one did then.
    if (left === 0) await this.switchReaders(generation);
  }

  private async switchReaders(generation: number): Promise<void> {
    const previous = this.record!.current.generation;
    const { record, changed } = await this.readModel.updateControl(switchTo(generation, Date.now()));
    if (changed) {
      this.log.info({ from: previous, to: generation }, "readers switched to the rebuilt generation");
      // Its projectors (here and in other replicas) stop as their consumer goes.
      await this.deleteConsumer(previous);
    }
    await this.reconcile(record);
  }

  /** Drops each generation retired for longer than the grace period, with its consumer, then forgets it. */
  private async dropRetired(): Promise<void> {
    for (const { generation, since } of this.record!.retired) {
      if (Date.now() - since < DROP_GRACE_MS) continue;
      await this.deleteConsumer(generation);
      await this.readModel.drop(generation);
      this.record = (await this.readModel.updateControl(forgetRetired(generation))).record;
      this.log.info({ generation }, "dropped a retired read-model generation and its consumer");
    }
  }

  private async deleteConsumer(generation: number): Promise<void> {
    const jsm = await this.nc.jetstreamManager();
    const durable = generationDurable(this.config.PROJECTOR_DURABLE, generation);
    await jsm.consumers.delete(this.config.EVENTS_STREAM, durable).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
}
