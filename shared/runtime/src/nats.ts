import { connect, type NatsConnection } from "nats";

/** Connects a service to NATS. It reconnects forever: a NATS restart must not take a service down. */
export async function connectNats(servers: string, name: string): Promise<NatsConnection> {
  return connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
}
