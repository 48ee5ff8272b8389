// TypeScript declarations of the tidings package (`import init, { Client } from 'tidings'`).
// Hand-written: wasm-bindgen's generated declarations type every value as `any`. The option
// names, ranges and defaults are those src/js/options.rs checks at run time.

/** What the client is doing: `client.state` and the `'state'` event. */
export type State = 'idle' | 'connecting' | 'push' | 'polling' | 'offline' | 'closed';

/** What carries data now: `client.transport` and the `'state'` event (`null` when nothing does). */
export type Transport = 'sse' | 'websocket' | 'long-polling' | 'poll';

/** Bayeux transports, in `transports` (order of preference). */
export type BayeuxTransport = 'websocket' | 'long-polling';

/** `err.code` of the errors the client reports. */
export type ErrorCode =
  | 'invalid-channel'
  | 'invalid-option'
  | 'auth'
  | 'http'
  | 'server-stop'
  | 'stream-error'
  | 'too-large'
  | 'network'
  | 'bad-response'
  | 'timeout'
  | 'callback'
  | 'closed'
  | 'handshake'
  | 'subscribe'
  | 'publish'
  | 'queue-full';

/** The errors on `'error'`, and what `ready` and `publish` reject with. */
export interface TidingsError extends Error {
  /** The stable code. */
  code: ErrorCode;
  /** The HTTP status, when a response caused the error. */
  status?: number;
  /** Whether the client retries by itself (`true`) or has stopped what the error concerns. */
  retrying: boolean;
  /** For `'callback'`: what the page's callback threw. */
  cause?: unknown;
}

/** The second argument of a subscription's callback. */
export interface MessageMeta {
  /** The channel the message was published on (a pattern's match, not the pattern). */
  channel: string;
  /** The server's id of the message, when it gave one. */
  id: string | undefined;
  /** The SSE event type (`'message'` unless the server named one; `'message'` for Bayeux). */
  event: string;
  /** Whether the message came by push or by polling. */
  via: 'push' | 'poll';
  /** How many earlier messages the throttle folded into this call (0: none). */
  coalesced: number;
}

/** `callback(data, meta)`: `data` is the payload (SSE: JSON-parsed when it parses, else the string). */
export type MessageCallback<T = unknown> = (data: T, meta: MessageMeta) => void;

/** Reconnect back-off: full jitter in `0..min(maxMs, minMs·2ⁿ)`. Whole milliseconds, 1 to 3,600,000. */
export interface BackoffOptions {
  /** Default 250. */
  minMs?: number;
  /** Default 30000; not below `minMs`. */
  maxMs?: number;
}

interface PollTiming {
  /** How often to poll while push is down (default 5000; 100 to 86,400,000). */
  intervalMs?: number;
  /** The safety-net poll while push works (default 300000; 0: none). */
  pushIntervalMs?: number;
}

/** Where to poll when push cannot work: a URL, or a page function returning the data. */
export type PollOptions =
  | (PollTiming & { url: string; fn?: never })
  | (PollTiming & { fn: () => unknown; url?: never });

/** What `auth()` may return: the `ext` to send from the next handshake on (nothing: the static `ext`). */
export type AuthResult = Record<string, unknown> | null | undefined | void;

interface CommonOptions {
  /** Extra request headers (SSE and poll requests; Bayeux long-polling POSTs). */
  headers?: Record<string, string>;
  /** Send cookies to a cross-origin server (default false). */
  withCredentials?: boolean;
  /** Reconnect back-off (default `{ minMs: 250, maxMs: 30000 }`). */
  backoff?: BackoffOptions;
  /** Per-channel throttle window in ms (default 500; 0: off). */
  throttleMs?: number;
  /** Where to poll when push cannot work. */
  poll?: PollOptions;
  /** How long push may be down before polling takes over, ms (default 5000). */
  downshiftMs?: number;
}

/** The options only an SSE client takes. */
interface SseOnly {
  /** Query parameter naming each channel (default `'channel'`). */
  channelParam?: string;
  /** Channels on one stream at most (default 10; 1 to 1000). */
  maxChannelsPerStream?: number;
  /** Resume with `?lastEventId=` instead of the `Last-Event-ID` header (default false). */
  lastEventIdInQuery?: boolean;
  /** A stream silent this long is reopened, ms (default 45000; at least 1000). */
  idleTimeoutMs?: number;
  /** Larger lines or events are skipped with a `'too-large'` error (default 1048576; at least 1024). */
  maxEventBytes?: number;
}

/** The options only a Bayeux client takes. */
interface BayeuxOnly {
  /** Transports in order of preference (default `['websocket', 'long-polling']`). */
  transports?: BayeuxTransport[];
  /** Sent as `ext` on every message. */
  ext?: Record<string, unknown>;
  /** Called before every (re)handshake; returns the `ext` to use. */
  auth?: () => AuthResult | Promise<AuthResult>;
}

type Without<T> = { [K in keyof T]?: never };

/** `new Client(url, { protocol: 'sse', … })` (the default protocol). */
export interface SseClientOptions extends CommonOptions, SseOnly, Without<BayeuxOnly> {
  protocol?: 'sse';
}

/** `new Client(url, { protocol: 'bayeux', … })`. */
export interface BayeuxClientOptions extends CommonOptions, BayeuxOnly, Without<SseOnly> {
  protocol: 'bayeux';
}

/** `new Client(url, { protocol: 'poll', poll: { … } })`: no push at all. */
export interface PollClientOptions extends CommonOptions, Without<SseOnly>, Without<BayeuxOnly> {
  protocol: 'poll';
  poll: PollOptions;
}

/** The options of `new Client`; unknown options and bad values throw a `TypeError`. */
export type ClientOptions = SseClientOptions | BayeuxClientOptions | PollClientOptions;

/** The options of `client.subscribe`. */
export interface SubscribeOptions {
  /** This subscription's throttle window, ms (default: the client's). */
  throttleMs?: number;
  /** This subscription's poll target (default: the client's). */
  poll?: PollOptions;
  /** Push messages only trigger a poll of the target; only poll answers reach the callback. */
  hints?: boolean;
  /** Resume the channel after this message id. */
  since?: string | number;
}

/** A subscription: `ready` and `unsubscribe()`. */
export interface Subscription {
  /** The channel name (or pattern). */
  readonly channel: string;
  /** Resolves when the server confirmed the subscription; rejects with a {@link TidingsError}. */
  readonly ready: Promise<void>;
  /** Stops deliveries (idempotent); the connection closes with the last subscription. */
  unsubscribe(): void;
}

/** Removes the listener `on()` added (idempotent). */
export type Off = () => void;

/** `on(…)`, typed per event. */
export interface Events {
  /** The state changed; `transport` is what carries data now. */
  on(event: 'state', callback: (state: State, transport: Transport | null) => void): Off;
  /** Something went wrong; `err.retrying` says whether the client recovers by itself. */
  on(event: 'error', callback: (err: TidingsError) => void): Off;
  /** The server could not resume these channels: reload their state. */
  on(event: 'reset', callback: (channels: string[]) => void): Off;
}

/** Everything a client does (the wasm client and the lazy one alike). */
export interface ClientApi extends Events {
  /**
   * Subscribes `callback(data, meta)` to `channel` (Bayeux: a pattern such as `/chat/*`).
   * Connects at the first subscription; those made in the same tick share one request.
   */
  subscribe<T = unknown>(channel: string, callback: MessageCallback<T>, options?: SubscribeOptions): Subscription;
  /** Publishes on `channel` (Bayeux); resolves with the server's id for the message, if any. */
  publish(channel: string, data?: unknown): Promise<string | undefined>;
  /** What the client is doing. */
  readonly state: State;
  /** What carries data now, or `null`. */
  readonly transport: Transport | null;
  /** Closes the connection and every subscription; pending `ready`s and publishes reject. */
  close(): void;
}

/** A realtime client: one connection, any number of channel subscriptions. */
export declare class Client {
  /** Connects nothing until the first `subscribe`. Throws a `TypeError` naming a bad option. */
  constructor(url: string, options?: ClientOptions);
  /** Frees the wasm side of this object (after `close()`); optional, the GC does it too. */
  free(): void;
  [Symbol.dispose](): void;
}
export interface Client extends ClientApi {}

/** The options of `poll(url, callback, options)`. */
interface PollerCommon extends PollTiming {
  throttleMs?: number;
  headers?: Record<string, string>;
  withCredentials?: boolean;
  downshiftMs?: number;
  backoff?: BackoffOptions;
}

/** `poll()` options: polling only, or with a push channel over SSE or Bayeux whose messages hint a refetch. */
export type PollerOptions =
  | (PollerCommon & { channel?: never; sse?: never; bayeux?: never })
  | (PollerCommon & { channel: string; sse: string; bayeux?: never })
  | (PollerCommon & { channel: string; bayeux: string; sse?: never });

/** What `poll()` returns. */
export interface Poller extends Events {
  /** Stops polling and push for good. */
  stop(): void;
  /** Resolves after the first answer (or once push carries the channel). */
  readonly ready: Promise<void>;
  readonly state: State;
  readonly transport: Transport | null;
}

/**
 * `poll(url, callback, options)`: the `setInterval` + `fetch` loop done right (conditional GET,
 * no overlap, jitter, paused while hidden); with `channel` and `sse` or `bayeux`, push messages
 * trigger an immediate refetch.
 */
export declare function poll<T = unknown>(url: string, callback: MessageCallback<T>, options?: PollerOptions): Poller;

/** What `init` accepts: where the wasm is, or the wasm itself. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** The instantiated wasm module's exports (internal to the package). */
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
}

/**
 * Loads and instantiates the wasm once (later calls return the same promise). Without an
 * argument it fetches `tidings_bg.wasm` from next to `tidings.js` (a bundler's asset URL).
 */
export default function init(
  module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput>;

/** Instantiates the wasm synchronously from its bytes or a compiled module. */
export declare function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): InitOutput;
