// Loaded into a service process by the tests that measure its memory (with --expose-gc): SIGUSR2
// collects garbage, so that heap figures taken before and after are comparable.
process.on("SIGUSR2", () => (globalThis as { gc?: () => void }).gc?.());
