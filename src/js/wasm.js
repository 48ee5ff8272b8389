// The glue between client.js and the wasm: loading it, functions over its exports, and the
// functions it imports. Written by hand in place of the module wasm-bindgen generates,
// for the size every page pays: that module cost about 1.4 KB of gzip per entry (this one
// about 1.0 KB), much of it for cases the package never has (deprecated init forms, missing
// browser APIs, freeing arguments on a throw, a class per export, names with hashes).
//
// The build (xtask/src/glue.rs) still runs wasm-bindgen on the wasm, then binaryen, which
// gives every import and export a one- or two-letter name, and fills those in here: `$name` is
// the import `name` (wasm-bindgen's `__wbg_<name>_<hash>` without its prefix and hash, or a
// snippet's function) or the export `name`, and `$wasm_file` the entry's wasm file. It fails
// when the wasm imports something this module does not provide, or when a `$name` is left
// over in the bundle. Imports of one protocol sit under its flag (`TIDINGS_SSE`,
// `TIDINGS_BAYEUX`), which the build defines per entry.
//
// The calling conventions are those of the wasm-bindgen version the build pins (0.2.130):
// strings and arrays go into memory the wasm allocates (`__wbindgen_malloc`), as a pointer and
// a length, and the wasm takes them over; JS values go as externrefs; an `Option` a function
// returns is written at the address it is given (`number_get`, `string_get`).
/* global TIDINGS_SSE, TIDINGS_BAYEUX */
import { Io, valueBody } from '../web/io.js';
import { stream } from '../web/sse_io.js';
import { post, send, socket } from '../web/bayeux_io.js';

let wasm;
// The length of what `pass` copied last.
let passed;
// Views of the memory, remade when it grew (the old buffer is then detached).
let bytes;
let words;
const memory = () => wasm.$memory.buffer;
const u8 = () => (bytes?.buffer == memory() ? bytes : (bytes = new Uint8Array(memory())));
const view = () => (words?.buffer == memory() ? words : (words = new DataView(memory())));

const encoder = new TextEncoder();
let decoder;
let decoded = 0;
/** The text at `ptr` (`len` bytes of UTF-8). */
const text = (ptr, len) => {
  // Safari's TextDecoder fails after about 2 GiB: a new one before that.
  if (!decoder || (decoded += len) > 2e9) {
    decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    decoded = len;
  }
  ptr >>>= 0;
  return decoder.decode(u8().subarray(ptr, ptr + len));
};

/** Copies `data` (a string, or an array of `size`-byte numbers) into the wasm's memory. */
const pass = (data, size = 1) => {
  let ptr;
  if (typeof data == 'string') {
    // ASCII (channels, ids, most fields) straight into the memory: `encode` makes a new array
    // per text and costs about ten times as much for a short one. Other texts go by `encode`.
    const len = data.length;
    ptr = wasm.$__wbindgen_malloc(len, 1) >>> 0;
    const mem = u8();
    let i = 0;
    for (let c; i < len && (c = data.charCodeAt(i)) < 128; i++) mem[ptr + i] = c;
    if (i == len) return (passed = len), ptr;
    wasm.$__wbindgen_free(ptr, len, 1);
    data = encoder.encode(data);
  }
  passed = data.length;
  ptr = wasm.$__wbindgen_malloc(passed * size, size) >>> 0;
  new (size == 8 ? Float64Array : Uint8Array)(memory(), ptr, passed).set(data);
  return ptr;
};

const imports = () => ({
  $module: {
    $__wbindgen_init_externref_table: () => {
      // wasm-bindgen's reserved slots: none, then undefined, null, true and false.
      const table = wasm.$__wbindgen_externrefs;
      table.set(0, undefined);
      table.set(1024, undefined);
      table.set(1025, null);
      table.set(1026, true);
      table.set(1027, false);
    },
    $__wbindgen_is_falsy: (v) => !v,
    // `Option<f64>`: whether there is one at `at`, the number at `at + 8`.
    $__wbindgen_number_get: (at, v) => {
      const is = typeof v == 'number';
      const dv = view();
      dv.setFloat64((at >>>= 0) + 8, is ? v : 0, true);
      dv.setInt32(at, is, true);
    },
    // `Option<String>`: the text's address at `at` (0: none), its length at `at + 4`.
    $__wbindgen_string_get: (at, v) => {
      const is = typeof v == 'string';
      const ptr = is ? pass(v) : 0;
      const dv = view();
      dv.setInt32((at >>>= 0) + 4, passed, true);
      dv.setInt32(at, ptr, true);
    },
    $get: (list, i) => list[i >>> 0],
    $length: (list) => list.length,
    $now: Date.now,
    $new: (emit, credentials, page) => new Io(emit, credentials != 0, page),
    $s: (io, ptr, len) => io.s(text(ptr, len)),
    $v: (io, v) => io.v(v),
    $c: (io, op, a, b, c) => io.c(op, a, b, c),
    $valueBody: valueBody,
    ...(TIDINGS_SSE && { $stream: stream }),
    ...(TIDINGS_BAYEUX && {
      $__wbindgen_is_object: (v) => typeof v == 'object' && v !== null,
      $__wbindgen_boolean_get: (v) => (typeof v == 'boolean' ? +v : 0xffffff),
      $__wbindgen_is_undefined: (v) => v === undefined,
      $isArray: Array.isArray,
      $post: post,
      $socket: socket,
      $send: send,
    }),
  },
});

// A client's wasm side is a pointer to its `Core` (src/js/mod.rs), which no call may use
// after it was freed and none may free while a call runs.
let depth = 0;
const doomed = [];
/** Runs export `f`; frees what `free` was asked to during it once the outermost call is done. */
const call = (f, ...args) => {
  depth++;
  try {
    return f(...args);
  } finally {
    if (!--depth) for (const ptr of doomed.splice(0)) wasm.$core_free(ptr);
  }
};

// A client the page dropped is freed with it (the registry holds its pointer).
const cores = new FinalizationRegistry((ptr) => (depth ? doomed.push(ptr) : wasm.$core_free(ptr)));

// A client's pointer, while it has one (the page may call a freed client).
const live = (client) => client._core || fail();

const fail = () => {
  throw Error('tidings: this client was freed');
};

/** Makes `client`'s wasm side (`client._core`, its pointer); freed with `client` if the page
 *  drops it without `free`. */
export const make = (client, page, emit, protocol, texts, n, ext) => {
  const t = pass(texts);
  const tn = passed;
  cores.register(client, (client._core = call(wasm.$core_new, page, emit, protocol, t, tn, pass(n, 8), passed, ext)), client);
};

/** A report of io.js or the page (`core_input`). */
export const input = (client, kind, id, a, b, c, d) => call(wasm.$core_input, live(client), kind, id, a, b, c, d);

/** A stream's body bytes (`core_chunk`). */
export const chunk = (client, id, data) => call(wasm.$core_chunk, live(client), id, pass(data), passed);

/** A subscription: its number, or -1 after the error went to the page (`core_subscribe`). */
export const subscribe = (client, texts, throttle, flags, fn, interval, push) =>
  call(wasm.$core_subscribe, live(client), pass(texts), passed, throttle, flags, fn, interval, push);

/** A publish: its number, or -1 (`core_publish`); only a build with Bayeux exports it
 *  (client.js refuses publish in the others). */
export const publish = (client, channel, data) =>
  TIDINGS_BAYEUX ? call(wasm.$core_publish, live(client), pass(channel), passed, data) : -1;

/** Frees `client`'s wasm side now, or when the call that asked for it has returned. */
export const free = (client) => {
  const ptr = live(client);
  client._core = 0;
  cores.unregister(client);
  depth ? doomed.push(ptr) : wasm.$core_free(ptr);
};

const start = (instance) => {
  wasm = instance.exports;
  wasm.$__wbindgen_start();
  return { memory: wasm.$memory };
};

let ready;
let loading;

/** Instantiates the wasm synchronously from its bytes or a compiled module. */
export function initSync(module) {
  if (ready) return ready;
  if (Object.getPrototypeOf(module ?? 0) === Object.prototype) ({ module } = module);
  if (!(module instanceof WebAssembly.Module)) module = new WebAssembly.Module(module);
  return (ready = start(new WebAssembly.Instance(module, imports())));
}

/** Loads and instantiates the wasm once; later calls get the same promise. */
export default function init(input) {
  if (ready) return Promise.resolve(ready);
  loading ??= load(input).catch((e) => {
    loading = undefined;
    throw e;
  });
  return loading;
}

async function load(input) {
  if (Object.getPrototypeOf(input ?? 0) === Object.prototype) ({ module_or_path: input } = input);
  input ??= new URL('$wasm_file', import.meta.url);
  if (typeof input == 'string' || input instanceof URL || (typeof Request == 'function' && input instanceof Request)) {
    input = fetch(input);
  }
  input = await input;
  let made;
  if (typeof Response == 'function' && input instanceof Response) {
    if (!input.ok) throw Error(`failed to fetch the wasm: ${input.status} ${input.statusText} (${input.url})`);
    try {
      made = await WebAssembly.instantiateStreaming(input, imports());
    } catch (e) {
      // A server that does not say application/wasm: compiled from the bytes instead.
      if (!/^(basic|cors|default)$/.test(input.type) || input.headers.get('Content-Type') == 'application/wasm') throw e;
      console.warn('tidings: the wasm is not served as application/wasm, so it is compiled the slower way:', e);
      made = await WebAssembly.instantiate(await input.arrayBuffer(), imports());
    }
  } else {
    made = await WebAssembly.instantiate(input, imports());
  }
  return (ready ??= start(made.instance ?? made));
}
