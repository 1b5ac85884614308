// The projector's own small HTTP port, for orchestrators and Prometheus: /healthz, /readyz, /metrics.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { answerClientErrorsWithJson, metricsAnswer, type Readiness } from "@keybox/runtime";

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(port: number, readiness: () => Promise<Readiness>): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, type = "application/json") => {
      res.writeHead(status, { "Content-Type": type });
      res.end(body);
    };
    if (req.method !== "GET") return send(405, JSON.stringify({ message: "Method Not Allowed" }));
    if (req.url === "/healthz") return send(200, JSON.stringify({ status: "ok" }));
    if (req.url === "/readyz") {
      void readiness()
        .catch((error: Error) => ({ ready: false, error: error.message }))
        .then(({ ready, ...details }) =>
          send(ready ? 200 : 503, JSON.stringify({ status: ready ? "ready" : "not ready", ...details })),
        );
      return;
    }
    if (req.url === "/metrics") {
      void metricsAnswer().then(({ status, contentType, body }) => send(status, body, contentType));
      return;
    }
    send(404, JSON.stringify({ message: "Not Found" }));
  });
  answerClientErrorsWithJson(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
