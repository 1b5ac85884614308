// Types for scripts/build.mjs (plain JavaScript, so that it runs without a TypeScript loader).
export declare const ENTRY_POINTS: Record<string, string>;
/** Builds every entry point into `outdir` (default dist/) and returns it. */
export declare function buildServices(outdir?: string): Promise<string>;
