// The projector's settings: exactly what it reads, validated at start.
import { z } from "zod";
import { DEFAULT_DLQ_STREAM, DEFAULT_EVENTS_STREAM, DEFAULT_PROJECTOR_DURABLE } from "@keybox/contract";
import { storeSettings } from "@keybox/read-model";
import { intSetting, natsNameSetting, runtimeSettings } from "@keybox/runtime";

export const projectorSettings = z.object({
  ...runtimeSettings.shape,
  ...storeSettings.shape,
  EVENTS_STREAM: natsNameSetting.default(DEFAULT_EVENTS_STREAM),
  DLQ_STREAM: natsNameSetting.default(DEFAULT_DLQ_STREAM),
  PROJECTOR_DURABLE: natsNameSetting.default(DEFAULT_PROJECTOR_DURABLE),
  PROJECTOR_BATCH_SIZE: intSetting(1, 10_000).default(256),
  PROJECTOR_ACK_WAIT_MS: intSetting(1000, 3_600_000).default(10_000),
  // JetStream needs max_deliver greater than the number of backoff steps, so at least 2.
  PROJECTOR_MAX_DELIVER: intSetting(2, 100).default(8),
  // At most 512 KiB: a license is stored whole in one chunk, and no part may pass PART_MAX_BYTES.
  MAX_EVENT_BYTES: intSetting(1024, 512 * 1024).default(256 * 1024),
  METRICS_PORT: intSetting(0, 65_535).default(9464),
  // For tests only: the projection version this process claims instead of its code's
  // PROJECTION_VERSION, to play a release that changes the projection rules.
  KEYBOX_TEST_PROJECTION_VERSION: intSetting(1, 1_000_000).optional(),
});

export type ProjectorSettings = z.infer<typeof projectorSettings>;
