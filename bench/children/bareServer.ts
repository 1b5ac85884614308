// The read baseline: a bare node:http server answering fixed bytes, the same body and the same
// headers the query API sends (Content-Type, Content-Length), with nothing else in the way.
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

const bodiesDir = process.env.BENCH_BODIES_DIR!;
const contentType = process.env.BENCH_CONTENT_TYPE!;
const port = Number(process.env.PORT);

/** `/<name>` → the bytes of `<name>.body`. */
const bodies = new Map<string, Buffer>();
for (const file of readdirSync(bodiesDir).filter((f) => f.endsWith(".body")))
  bodies.set(`/${file.slice(0, -".body".length)}`, readFileSync(path.join(bodiesDir, file)));

const server = http.createServer((req, res) => {
  const body = bodies.get(req.url ?? "");
  if (body) {
    res.writeHead(200, { "Content-Type": contentType, "Content-Length": body.length });
    res.end(body);
  } else if (req.url === "/healthz") {
    res.end("ok");
  } else {
    res.writeHead(404).end();
  }
});
server.listen(port, "127.0.0.1");

process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
});
