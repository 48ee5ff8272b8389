// Type-checked by tests/browser/package.test.mjs (`tsc --noEmit`, strict) against the
// declarations in the packed npm tarball: the whole API of 'tidings' and 'tidings/lazy' (and the
// single-protocol entries 'tidings/sse' and 'tidings/bayeux', which share 'tidings''s), used as
// a page would. Never run. Each `@ts-expect-error` line is a misuse the declarations must
// refuse; an `any` anywhere on its path would make the directive unused, and tsc fails on that.
import init, {
  Client,
  initSync,
  poll,
  type ClientOptions,
  type ErrorCode,
  type MessageMeta,
  type Poller,
  type State,
  type Subscription,
  type TidingsError,
  type Transport,
} from 'tidings';
import loadLazy, { Client as LazyClient, poll as lazyPoll } from 'tidings/lazy';
import type { Subscription as LazySubscription } from 'tidings/lazy';
import initSse, { Client as SseClient } from 'tidings/sse';
import initBayeux, { Client as BayeuxClient, type Subscription as BayeuxSubscription } from 'tidings/bayeux';

interface Comment {
  text: string;
}

export async function bundled(): Promise<void> {
  const out = await init();
  const memory: WebAssembly.Memory = out.memory;
  void memory;
  await init({ module_or_path: new URL('/assets/tidings_bg.wasm', location.href) });
  initSync({ module: new Uint8Array() });

  const sse = new Client('/events/', {
    protocol: 'sse',
    headers: { Authorization: 'Bearer t' },
    withCredentials: false,
    backoff: { minMs: 250, maxMs: 30_000 },
    throttleMs: 500,
    poll: { url: '/poll/comments/123', intervalMs: 5_000, pushIntervalMs: 300_000 },
    downshiftMs: 5_000,
    channelParam: 'channel',
    maxChannelsPerStream: 10,
    lastEventIdInQuery: true,
    idleTimeoutMs: 45_000,
    maxEventBytes: 1 << 20,
  });
  const sub: Subscription = sse.subscribe<Comment>(
    '/comments/123',
    (data, meta) => {
      const text: string = data.text;
      const channel: string = meta.channel;
      const id: string | undefined = meta.id;
      const event: string = meta.event;
      const via: 'push' | 'poll' = meta.via;
      const coalesced: number = meta.coalesced;
      void [text, channel, id, event, via, coalesced];
    },
    { throttleMs: 0, poll: { fn: async () => ({ text: 'x' }) }, hints: false, since: '7' },
  );
  await sub.ready;
  const name: string = sub.channel;
  void name;
  sub.unsubscribe();
  sse.subscribe('/a', (data: unknown, meta: MessageMeta) => void [data, meta], { since: 3 });

  const offState = sse.on('state', (state, transport) => {
    const s: State = state;
    const t: Transport | null = transport;
    void [s, t];
  });
  sse.on('error', (err) => {
    const e: TidingsError = err;
    const code: ErrorCode = e.code;
    const status: number | undefined = e.status;
    const retrying: boolean = e.retrying;
    const message: string = e.message;
    void [code, status, retrying, message, e.cause];
  });
  sse.on('reset', (channels) => {
    const list: string[] = channels;
    void list;
  });
  offState();
  const state: State = sse.state;
  const transport: Transport | null = sse.transport;
  void [state, transport];
  sse.close();
  sse.free();

  const bayeux = new Client('/bayeux', {
    protocol: 'bayeux',
    transports: ['websocket', 'long-polling'],
    ext: { token: 'abc' },
    auth: async () => ({ token: 'fresh' }),
    headers: { 'X-Id': '1' },
    backoff: { minMs: 100 },
  });
  const published: string | undefined = await bayeux.publish('/chat/1', { text: 'hi' });
  void published;
  new Client('/bayeux', { protocol: 'bayeux', auth: () => undefined });

  const pollOnly = new Client('/poll/x', { protocol: 'poll', poll: { url: '/poll/x' } });
  void pollOnly;
  new Client('/events/');

  const poller: Poller = poll<Comment[]>('/comments.json', (list) => list.map((c) => c.text), { intervalMs: 5_000 });
  await poller.ready;
  poller.on('state', (s: State, t: Transport | null) => void [s, t]);
  const ps: State = poller.state;
  const pt: Transport | null = poller.transport;
  void [ps, pt];
  poller.stop();
  poll('/comments.json', () => {}, { channel: '/comments/123', sse: '/events/', throttleMs: 500 });
  poll('/comments.json', () => {}, { channel: '/comments/123', bayeux: '/bayeux', backoff: { maxMs: 1 } });

  const options: ClientOptions = { protocol: 'sse', throttleMs: 0 };
  void options;
}

export async function lazy(): Promise<void> {
  const mod = await loadLazy();
  const real = new mod.Client('/events/');
  real.free();
  const bayeux = await loadLazy('bayeux');
  new bayeux.Client('/bayeux', { protocol: 'bayeux' }).free();
  // @ts-expect-error: not a protocol
  void loadLazy('websocket');
  const client = new LazyClient('/events/', { protocol: 'sse', maxChannelsPerStream: 50 });
  const sub: LazySubscription = client.subscribe<number>('/n', (n, meta) => void [n + 1, meta.via]);
  await sub.ready;
  client.on('error', (err) => void err.code);
  const off: () => void = client.on('reset', (channels) => void channels.length);
  off();
  const id: string | undefined = await client.publish('/n', 1);
  void [id, client.state, client.transport];
  client.close();
  const p = lazyPoll('/comments.json', () => {}, { channel: '/c', sse: '/events/' });
  p.stop();
}

export function misuse(): void {
  // @ts-expect-error an unknown protocol
  new Client('/events/', { protocol: 'websocket' });
  // @ts-expect-error a Bayeux option on an SSE client
  new Client('/events/', { protocol: 'sse', ext: { token: 'abc' } });
  // @ts-expect-error a Bayeux option without protocol (SSE is the default)
  new Client('/events/', { transports: ['websocket'] });
  // @ts-expect-error an SSE option on a Bayeux client
  new Client('/bayeux', { protocol: 'bayeux', maxChannelsPerStream: 5 });
  // @ts-expect-error protocol 'poll' needs a poll target
  new Client('/poll/x', { protocol: 'poll' });
  // @ts-expect-error an unknown option
  new Client('/events/', { throttle: 500 });
  // @ts-expect-error throttleMs is a number
  new Client('/events/', { throttleMs: '500' });
  // @ts-expect-error a poll target has a url or a fn, not both
  new Client('/events/', { poll: { url: '/p', fn: () => 1 } });
  // @ts-expect-error an unknown Bayeux transport
  new Client('/bayeux', { protocol: 'bayeux', transports: ['sse'] });
  // @ts-expect-error headers are strings
  new Client('/events/', { headers: { 'X-N': 1 } });
  // @ts-expect-error an unknown back-off field
  new Client('/events/', { backoff: { min: 1 } });
  const c = new Client('/events/');
  // @ts-expect-error an unknown event
  c.on('message', () => {});
  // @ts-expect-error 'reset' hands over channel names, not a state
  c.on('reset', (state: State) => void state);
  // @ts-expect-error an unknown subscribe option
  c.subscribe('/a', () => {}, { hint: true });
  // @ts-expect-error the callback gets meta, whose via is 'push' | 'poll'
  c.subscribe('/a', (_data, meta) => { const v: 'sse' = meta.via; void v; });
  // @ts-expect-error state is read-only
  c.state = 'idle';
  // @ts-expect-error a push channel needs its sse or bayeux URL
  poll('/c.json', () => {}, { channel: '/c' });
  // @ts-expect-error sse and bayeux are exclusive
  poll('/c.json', () => {}, { channel: '/c', sse: '/events/', bayeux: '/bayeux' });
  // @ts-expect-error the lazy client has the same option types
  new LazyClient('/events/', { protocol: 'sse', auth: () => undefined });
  // @ts-expect-error the lazy client is freed by the GC only (no wasm object of its own)
  new LazyClient('/events/').free();
}

/** The single-protocol entries: the same API, one protocol's wasm each. */
export async function oneProtocol(): Promise<void> {
  await initSse();
  await initBayeux({ module_or_path: new URL('/assets/tidings-bayeux_bg.wasm', location.href) });
  const sse = new SseClient('/events/', { protocol: 'sse', throttleMs: 0 });
  sse.subscribe('/comments/123', (data: unknown, meta: MessageMeta) => void [data, meta.id]);
  const bayeux = new BayeuxClient('/bayeux', { protocol: 'bayeux', transports: ['websocket'] });
  const sub: BayeuxSubscription = bayeux.subscribe('/chat/*', () => {});
  await sub.ready;
  const id: string | undefined = await bayeux.publish('/chat/a', { text: 'hi' });
  void id;
  // @ts-expect-error the entries take the same options as 'tidings'
  new SseClient('/events/', { protocol: 'sse', throttleMs: 'fast' });
}
