// Errors answered before or outside the routes: requests Node's HTTP parser refuses (heads over
// 16 KiB, malformed HTTP) and a failing /metrics get JSON bodies like every other error, on the
// query API and on the projector's health port.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gauge, register } from "prom-client";
import { answerClientErrorsWithJson } from "@keybox/runtime";
import { startHealthServer, type HealthServer } from "../services/projector/src/adapters/healthServer.ts";
import { bearer, httpGet, rawRequest, type HttpResult } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { startPipeline, type Pipeline } from "./support/pipeline.ts";

const nats = useNats();
let pipeline: Pipeline;
let health: HealthServer;
beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
  health = await startHealthServer(0, async () => ({ ready: true }));
});
afterAll(async () => {
  await health?.close();
  await pipeline?.stop();
});

function expectJson(res: HttpResult, status: number, body: object) {
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  expect(res.body).toEqual(body);
}

const servers: [string, () => string][] = [
  ["the query API", () => pipeline.api.url],
  ["the projector's health server", () => `http://127.0.0.1:${health.port}`],
];

describe.each(servers)("%s, for requests Node's HTTP parser refuses", (_name, baseUrl) => {
  const tooLarge = { message: "Request header too large" };

  it("answers a 100 KB Authorization header with a JSON 431", async () => {
    expectJson(await httpGet(`${baseUrl()}/dashboard`, { headers: bearer("a".repeat(100_000)) }), 431, tooLarge);
  });

  it("answers a 20 KB query string with a JSON 431", async () => {
    expectJson(await httpGet(`${baseUrl()}/dashboard?clientId=${"a".repeat(20_000)}`), 431, tooLarge);
  });

  it("answers malformed HTTP with a JSON 400, a correct Content-Length, and closes", async () => {
    const res = await rawRequest(baseUrl(), "GET /dashboard HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    expectJson(res, 400, { message: "Bad Request" });
    expect(res.headers["content-length"]).toBe(String(JSON.stringify(res.body).length));
    expect(res.headers.connection).toBe("close");
  });
});

describe.each(servers)("%s, for a method its routes do not take", (name, baseUrl) => {
  const paths = [
    "/healthz",
    "/readyz",
    "/metrics",
    ...(name === "the query API" ? ["/dashboard", "/dashboard/events"] : []),
  ];
  const ask = (method: string, path: string) =>
    rawRequest(baseUrl(), `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);

  it.each(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])(
    "answers %s with a JSON 405 and Allow: GET, HEAD",
    async (method) => {
      for (const path of paths) {
        const res = await ask(method, path);
        expect([path, res.headers.allow]).toEqual([path, "GET, HEAD"]);
        expectJson(res, 405, { message: "Method Not Allowed" });
      }
    },
  );

  it("answers HEAD as GET, without a body", async () => {
    const res = await ask("HEAD", "/healthz");
    expect({ status: res.status, type: res.headers["content-type"], body: res.body }).toEqual({
      status: 200,
      type: "application/json",
      body: "",
    });
  });

  it("answers a path it does not serve with a JSON 404, whatever the method", async () => {
    for (const method of ["GET", "POST"]) expectJson(await ask(method, "/nowhere"), 404, { message: "Not Found" });
  });
});

describe("the JSON answer to a request Node times out", () => {
  it("is a 408", async () => {
    // Node's request timeout is 5 minutes; a server of its own with a short one shows the answer.
    const server = http.createServer({ requestTimeout: 200, connectionsCheckingInterval: 50 }, (_req, res) =>
      res.end(),
    );
    answerClientErrorsWithJson(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const res = await rawRequest(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        "GET / HTTP/1.1\r\nHost: x\r\n",
      );
      expectJson(res, 408, { message: "Request Timeout" });
    } finally {
      server.close();
    }
  });
});

describe("GET /metrics when a metric cannot be collected", () => {
  it("answers 500 Metrics unavailable, not the dashboard's message", async () => {
    const name = "keybox_test_broken_metric";
    new Gauge({
      name,
      help: "fails on purpose",
      collect() {
        throw new Error("collector failed");
      },
    });
    try {
      expectJson(await httpGet(`${pipeline.api.url}/metrics`), 500, { message: "Metrics unavailable" });
    } finally {
      register.removeSingleMetric(name);
    }
    expect((await httpGet(`${pipeline.api.url}/metrics`)).status).toBe(200);
  });
});
