// The consumer baseline: a bare JetStream pull consumer on a durable the benchmark created. It does
// what any consumer must (parse each message, acknowledge it) and nothing else; with
// BENCH_ECHO_SUBJECT it also publishes each message's stream sequence there (freshness baseline).
import { connect } from "nats";

const nc = await connect({ servers: process.env.NATS_URL!, name: "bench-bare-consumer" });
const echoSubject = process.env.BENCH_ECHO_SUBJECT || undefined;
const consumer = await nc.jetstream().consumers.get(process.env.BENCH_STREAM!, process.env.BENCH_DURABLE!);
// As the projector does: a callback per message, pulling twice its batch size (256) at a time.
const messages = await consumer.consume({
  max_messages: 512,
  callback: (message) => {
    JSON.parse(message.string());
    message.ack();
    if (echoSubject) nc.publish(echoSubject, String(message.seq));
  },
});

process.once("SIGTERM", () => {
  void messages.close().then(() => nc.drain());
});
