// TypeScript declarations of the lazy entry (`import { Client } from 'tidings/lazy'`): the API
// of 'tidings', with the wasm client loaded at the first subscribe, publish or poll.
import type { ClientApi, ClientOptions, MessageCallback, Poller, PollerOptions } from './tidings.js';

export type * from './tidings.js';

/**
 * A realtime client whose wasm is loaded at its first `subscribe` or `publish`. The options are
 * checked then: a bad option rejects `ready` (and reaches `'error'`) instead of throwing here.
 */
export declare class Client {
  constructor(url: string, options?: ClientOptions);
}
export interface Client extends ClientApi {}

/** `poll(url, callback, options)`, the wasm loaded at the call; a bad option rejects `ready`. */
export declare function poll<T = unknown>(url: string, callback: MessageCallback<T>, options?: PollerOptions): Poller;

/**
 * Loads the wasm client of `protocol` (default `'sse'`; `'poll'` loads SSE's, which polls too)
 * now instead of at the first subscribe (optional; idempotent). Resolves to that protocol's
 * module ('tidings/sse' or 'tidings/bayeux'), initialised: the API of 'tidings'.
 */
export default function load(protocol?: 'sse' | 'bayeux' | 'poll'): Promise<typeof import('./tidings.js')>;
