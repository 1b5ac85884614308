// The read baseline: a bare node:http server answering fixed bytes, the same body and the same
// headers the query API sends (Content-Type, Content-Length, Cache-Control, ETag), with nothing
// else in the way; and 304 with no body when If-None-Match is that ETag, exactly as sent.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

const bodiesDir = process.env.BENCH_BODIES_DIR!;
const contentType = process.env.BENCH_CONTENT_TYPE!;
const port = Number(process.env.PORT);
const CACHE_CONTROL = "private, no-cache";

interface Served {
  body: Buffer;
  /** From `<name>.etag`, when there is one. */
  etag: string | undefined;
}

/** `/<name>` → the bytes of `<name>.body`, and its ETag. */
const bodies = new Map<string, Served>();
for (const file of readdirSync(bodiesDir).filter((f) => f.endsWith(".body"))) {
  const name = file.slice(0, -".body".length);
  const etagFile = path.join(bodiesDir, `${name}.etag`);
  bodies.set(`/${name}`, {
    body: readFileSync(path.join(bodiesDir, file)),
    etag: existsSync(etagFile) ? readFileSync(etagFile, "utf8") : undefined,
  });
}

const server = http.createServer((req, res) => {
  const served = bodies.get(req.url ?? "");
  if (served?.etag !== undefined && req.headers["if-none-match"] === served.etag) {
    res.writeHead(304, { "Cache-Control": CACHE_CONTROL, ETag: served.etag }).end();
  } else if (served) {
    res.writeHead(200, {
      "Content-Type": contentType,
      "Content-Length": served.body.length,
      ...(served.etag !== undefined && { "Cache-Control": CACHE_CONTROL, ETag: served.etag }),
    });
    res.end(served.body);
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
