// Types for latchkey's Node test package (index.js).
import type { Redis, RedisOptions } from "ioredis";

export interface StartOptions {
  /** The server binary (see resolveBinary for the search order). */
  bin?: string;
  /** More server flags, after the package's own (`["--maxmemory", "10mb"]`). */
  args?: Array<string | number>;
  /** Bound on start-up, ms (default 10000). */
  timeoutMs?: number;
  /** The server's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** A reply from the control connection (RESP2). */
export type Reply = string | number | null | Reply[];

/** An error reply (`-ERR ...`) on the control connection; `message` is the line. */
export class ReplyError extends Error {}

export class LatchkeyServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly bin: string;
  /** The server's temporary working directory, removed by stop(). */
  readonly dir: string;
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  /** The server's last 64 KB of output. */
  readonly output: string;
  /** A connected ioredis client, closed by stop(). */
  client(options?: RedisOptions): Promise<Redis>;
  command(...args: Array<string | number | Buffer>): Promise<Reply>;
  advanceTime(ms: number): Promise<"OK">;
  pauseTime(): Promise<"OK">;
  resumeTime(): Promise<"OK">;
  /** `command` is a command name or `*` for any. */
  failNext(command: string, n?: number, error?: string): Promise<"OK">;
  delayNext(command: string, n: number, ms: number): Promise<"OK">;
  closeNext(command: string, n?: number): Promise<"OK">;
  dropClients(): Promise<"OK">;
  refuseConnections(ms: number): Promise<"OK">;
  clearFaults(): Promise<"OK">;
  faults(): Promise<Array<[string, number, "error" | "delay" | "close", string | number | null]>>;
  reset(): Promise<"OK">;
  stop(): Promise<void>;
  kill(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

export function start(options?: StartOptions): Promise<LatchkeyServer>;

type Hook = (fn: () => unknown) => unknown;
/** A runner's hooks: node:test's before/after/beforeEach, or beforeAll/afterAll/beforeEach. */
export interface Hooks {
  before?: Hook;
  after?: Hook;
  beforeAll?: Hook;
  afterAll?: Hook;
  beforeEach?: Hook;
}
/** One server for a file's tests: started before them, reset before each, stopped after. */
export function useLatchkey(
  hooks: Hooks,
  options?: StartOptions & { reset?: boolean },
): { readonly server: LatchkeyServer; readonly redis: Redis };
export function resolveBinary(options?: { bin?: string }): string;
