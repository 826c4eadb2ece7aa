/**
 * XXH64 (seed 0), the hash behind zstd's frame content checksum. Used to check
 * zstd frames because the zstd decoder (fzstd) does not check them.
 *
 * The 32-byte stripe loop runs in a tiny WebAssembly function generated below,
 * since JavaScript has no fast 64-bit multiply (a pure-JS loop manages about
 * 120 MB/s, well below the decoder's speed); the rest (start, tail, final
 * mixing) runs once per frame and uses BigInt. Algorithm facts from the XXH64
 * specification (xxhash `doc/xxhash_spec.md`).
 */
const MASK = (1n << 64n) - 1n;
const PRIME1 = 0x9e3779b185ebca87n;
const PRIME2 = 0xc2b2ae3d27d4eb4fn;
const PRIME3 = 0x165667b19e3779f9n;
const PRIME4 = 0x85ebca77c2b2ae63n;
const PRIME5 = 0x27d4eb2f165667c5n;

const STRIPE = 32;
/** Wasm memory: the four lane accumulators at 0..31, input stripes from STATE_BYTES on. */
const STATE_BYTES = 32;
const MEMORY_PAGES = 2;
const INPUT_CAPACITY = 64 * 1024;

/** The part of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
declare const WebAssembly: {
  Module: new (binary: Uint8Array) => object;
  Instance: new (module: object) => { exports: object };
};

interface StripeKernel {
  memory: { buffer: ArrayBuffer };
  /** Runs the stripes stored at [STATE_BYTES, end) through the accumulators. */
  stripes(end: number): void;
}

let kernelModule: object | undefined;

function newKernel(): StripeKernel {
  kernelModule ??= new WebAssembly.Module(stripeKernelBinary());
  const instance = new WebAssembly.Instance(kernelModule);
  return instance.exports as unknown as StripeKernel;
}

export class Xxh64 {
  readonly #kernel = newKernel();
  readonly #memory = new Uint8Array(this.#kernel.memory.buffer);
  readonly #lanes = new BigUint64Array(this.#kernel.memory.buffer, 0, 4);
  readonly #pending = new Uint8Array(STRIPE);
  #pendingLength = 0;
  #total = 0;

  constructor() {
    this.#lanes.set([(PRIME1 + PRIME2) & MASK, PRIME2, 0n, (-PRIME1) & MASK]);
  }

  update(data: Uint8Array): void {
    this.#total += data.length;
    let position = 0;
    if (this.#pendingLength > 0) {
      position = Math.min(STRIPE - this.#pendingLength, data.length);
      this.#pending.set(data.subarray(0, position), this.#pendingLength);
      this.#pendingLength += position;
      if (this.#pendingLength < STRIPE) return;
      this.#runStripes(this.#pending);
      this.#pendingLength = 0;
    }
    while (data.length - position >= STRIPE) {
      const length = Math.min(INPUT_CAPACITY, (data.length - position) & ~(STRIPE - 1));
      this.#runStripes(data.subarray(position, position + length));
      position += length;
    }
    this.#pending.set(data.subarray(position), 0);
    this.#pendingLength = data.length - position;
  }

  digest(): bigint {
    let hash: bigint;
    if (this.#total >= STRIPE) {
      const [v1, v2, v3, v4] = this.#lanes as unknown as [bigint, bigint, bigint, bigint];
      hash = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
      for (const lane of [v1, v2, v3, v4]) hash = (((hash ^ round(0n, lane)) * PRIME1) + PRIME4) & MASK;
    } else {
      hash = PRIME5;
    }
    hash = (hash + BigInt(this.#total)) & MASK;
    const tail = new DataView(this.#pending.buffer, 0, this.#pendingLength);
    let i = 0;
    for (; i + 8 <= tail.byteLength; i += 8) {
      hash = ((rotl(hash ^ round(0n, tail.getBigUint64(i, true)), 27n) * PRIME1) + PRIME4) & MASK;
    }
    if (i + 4 <= tail.byteLength) {
      hash = ((rotl(hash ^ ((BigInt(tail.getUint32(i, true)) * PRIME1) & MASK), 23n) * PRIME2) + PRIME3) & MASK;
      i += 4;
    }
    for (; i < tail.byteLength; i++) {
      hash = (rotl(hash ^ ((BigInt(tail.getUint8(i)) * PRIME5) & MASK), 11n) * PRIME1) & MASK;
    }
    hash ^= hash >> 33n;
    hash = (hash * PRIME2) & MASK;
    hash ^= hash >> 29n;
    hash = (hash * PRIME3) & MASK;
    return hash ^ (hash >> 32n);
  }

  #runStripes(stripes: Uint8Array): void {
    this.#memory.set(stripes, STATE_BYTES);
    this.#kernel.stripes(STATE_BYTES + stripes.length);
  }
}

export function xxh64(data: Uint8Array): bigint {
  const hash = new Xxh64();
  hash.update(data);
  return hash.digest();
}

function rotl(value: bigint, bits: bigint): bigint {
  return ((value << bits) | (value >> (64n - bits))) & MASK;
}

function round(accumulator: bigint, input: bigint): bigint {
  return (rotl((accumulator + input * PRIME2) & MASK, 31n) * PRIME1) & MASK;
}

/**
 * The binary of this module (WebAssembly text shown for reading):
 *
 *   (module (memory (export "memory") 2)
 *     (func (export "stripes") (param $end i32) (local $p i32) (local $v1 i64) ... (local $v4 i64)
 *       v1..v4 := i64.load 0, 8, 16, 24;  p := 32
 *       loop while p < end:
 *         vN := rotl(vN + load(p + 8(N-1)) * PRIME2, 31) * PRIME1   for N = 1..4
 *         p += 32
 *       i64.store 0, 8, 16, 24 := v1..v4))
 */
function stripeKernelBinary(): Uint8Array {
  const END = 0, P = 1, LANES = [2, 3, 4, 5];
  const op = {
    block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, localGet: 0x20, localSet: 0x21,
    i64Load: 0x29, i64Store: 0x37, i32Const: 0x41, i64Const: 0x42, i32GeU: 0x4f, i32Add: 0x6a,
    i64Add: 0x7c, i64Mul: 0x7e, i64Rotl: 0x89, void: 0x40, i32: 0x7f, i64: 0x7e,
  };
  const i64Const = (value: bigint): number[] => [op.i64Const, ...sleb128(BigInt.asIntN(64, value))];
  const laneOffset = (lane: number): number => 8 * lane;
  const body = [
    // locals: one i32 ($p), four i64 (v1..v4)
    2, 1, op.i32, 4, op.i64,
    ...LANES.flatMap((local, lane) => [op.i32Const, 0, op.i64Load, 3, laneOffset(lane), op.localSet, local]),
    op.i32Const, STATE_BYTES, op.localSet, P,
    op.block, op.void, op.loop, op.void,
    op.localGet, P, op.localGet, END, op.i32GeU, op.brIf, 1,
    ...LANES.flatMap((local, lane) => [
      op.localGet, local, op.localGet, P, op.i64Load, 3, laneOffset(lane), ...i64Const(PRIME2), op.i64Mul, op.i64Add,
      ...i64Const(31n), op.i64Rotl, ...i64Const(PRIME1), op.i64Mul, op.localSet, local,
    ]),
    op.localGet, P, op.i32Const, STRIPE, op.i32Add, op.localSet, P,
    op.br, 0, op.end, op.end,
    ...LANES.flatMap((local, lane) => [op.i32Const, 0, op.localGet, local, op.i64Store, 3, laneOffset(lane)]),
    op.end,
  ];
  const name = (text: string): number[] => [text.length, ...Buffer.from(text, 'ascii')];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 1, op.i32, 0]), // one type: (i32) -> ()
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0, MEMORY_PAGES]), // one memory, minimum size
    ...section(7, [2, ...name('memory'), 2, 0, ...name('stripes'), 0, 0]),
    ...section(10, [1, ...uleb128(body.length), ...body]),
  ]);
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb128(content.length), ...content];
}

function uleb128(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb128(value: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = Number(value & 0x7fn);
    value >>= 7n;
    const done = (value === 0n && (byte & 0x40) === 0) || (value === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}
