// @keybox/runtime: what every service process needs around its own work — configuration, logs,
// the metrics registry, JSON answers to malformed HTTP, NATS connections and the service runner.
export {
  ConfigError,
  intSetting,
  loadConfig,
  natsNameSetting,
  requireSetting,
  runtimeSettings,
  type RuntimeSettings,
} from "./config.ts";
export { answerClientErrorsWithJson, READ_ONLY_METHODS } from "./http.ts";
export { exitOnStartFailure, onShutdownSignal } from "./lifecycle.ts";
export { createLogger, type Logger } from "./logger.ts";
export { type Readiness, withTimeout } from "./health.ts";
export { collectProcessMetrics, metricsAnswer, metricsRegistry } from "./metrics.ts";
export { connectNats } from "./nats.ts";
export { runService, type ServiceContext } from "./service.ts";
