export * from "./events.ts";
export * from "./subjects.ts";
export * from "./config.ts";
export * from "./logger.ts";
export * from "./readModel.ts";
export * from "./store/index.ts";
export * from "./nats.ts";
export * from "./lifecycle.ts";
