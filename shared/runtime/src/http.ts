// Node's HTTP server answers requests it cannot parse by itself, with an empty body; this makes
// those answers JSON like every other error of the services.
import type { Server } from "node:http";
import type { Socket } from "node:net";

/** The `Allow` header of every route of the services: they only read. */
export const READ_ONLY_METHODS = "GET, HEAD";

const ANSWERS: ReadonlyMap<string, [status: number, reason: string, message: string]> = new Map([
  ["HPE_HEADER_OVERFLOW", [431, "Request Header Fields Too Large", "Request header too large"]],
  ["ERR_HTTP_REQUEST_TIMEOUT", [408, "Request Timeout", "Request Timeout"]],
]);

/** Answers requests Node refuses (431: head over the size limit, 408: too slow, else 400) with JSON. */
export function answerClientErrorsWithJson(server: Server): void {
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    // As Node itself does: never write into a response already under way on this socket.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (error.code === "ECONNRESET" || !socket.writable || inFlight) {
      socket.destroy();
      return;
    }
    const [status, reason, message] = ANSWERS.get(error.code ?? "") ?? [400, "Bad Request", "Bad Request"];
    const body = JSON.stringify({ message });
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    socket.destroy();
  });
}
