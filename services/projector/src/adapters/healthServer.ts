// The projector's own small HTTP port, for orchestrators and Prometheus: /healthz, /readyz, /metrics.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { answerClientErrorsWithJson, metricsAnswer, READ_ONLY_METHODS, type Readiness } from "@keybox/runtime";

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(port: number, readiness: () => Promise<Readiness>): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": String(Buffer.byteLength(body)),
        ...headers,
      });
      res.end(body); // node:http sends no body to a HEAD
    };
    const route = req.url === "/healthz" || req.url === "/readyz" || req.url === "/metrics" ? req.url : undefined;
    if (!route) return send(404, JSON.stringify({ message: "Not Found" }));
    if (req.method !== "GET" && req.method !== "HEAD")
      return send(405, JSON.stringify({ message: "Method Not Allowed" }), { Allow: READ_ONLY_METHODS });
    if (route === "/healthz") return send(200, JSON.stringify({ status: "ok" }));
    if (route === "/readyz") {
      void readiness()
        .catch((error: Error) => ({ ready: false, error: error.message }))
        .then(({ ready, ...details }) =>
          send(ready ? 200 : 503, JSON.stringify({ status: ready ? "ready" : "not ready", ...details })),
        );
      return;
    }
    void metricsAnswer().then(({ status, contentType, body }) => send(status, body, { "Content-Type": contentType }));
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
