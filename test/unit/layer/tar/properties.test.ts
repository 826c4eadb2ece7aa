/**
 * Property tests: random member lists written by the test writer read back
 * as the same members; chunk boundaries never matter; damaged archives give
 * a LayerFormatError or a valid parse, never another exception.
 */
import test from 'ava';
import { deepStrictEqual } from 'node:assert/strict';
import fc from 'fast-check';
import { LayerFormatError } from '../../../../snapshotter/core/errors.js';
import { parseChunks, type ParseResult } from '../../../support/tar-events.js';
import { BLOCK, TarBuilder, type MemberType, type NumericField, type TarMember } from '../../../support/tar-writer.js';

/** Byte strings (one char per byte) without NUL and '/'. */
const component = fc.uint8Array({ minLength: 1, maxLength: 70 })
  .map((raw) => Buffer.from(raw.map((b) => (b === 0 || b === 0x2f ? 0x61 : b))).toString('latin1'));
const path = fc.tuple(fc.array(component, { minLength: 1, maxLength: 5 }), fc.constantFrom('', '/', '//'))
  .map(([parts, tail]) => parts.join('/') + tail);
const xattrName = fc.uint8Array({ minLength: 0, maxLength: 30 })
  .map((raw) => `user.${Buffer.from(raw.filter((b) => b !== 0 && b !== 0x3d)).toString('latin1')}`);

const member = fc.record({
  path,
  type: fc.constantFrom<MemberType>('file', 'file', 'directory', 'symlink', 'hardlink', 'char', 'block', 'fifo'),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 0xffffffff })),
  gid: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 0xffffffff })),
  mtime: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.integer({ min: -(2 ** 40), max: 2 ** 45 })),
  data: fc.uint8Array({ maxLength: 1500 }),
  linkTarget: path,
  devMajor: fc.integer({ min: 0, max: 0xfff }),
  devMinor: fc.integer({ min: 0, max: 0xfffff }),
  xattrs: fc.array(fc.tuple(fc.oneof(xattrName, fc.constantFrom('user.dup', 'security.capability')), fc.uint8Array({ maxLength: 100 })), { maxLength: 4 }),
  longNames: fc.constantFrom<'pax' | 'gnu' | 'prefix'>('pax', 'gnu', 'prefix'),
  base256: fc.subarray<NumericField>(['uid', 'gid', 'mtime', 'size']),
  magic: fc.constantFrom<'posix' | 'gnu'>('posix', 'gnu'),
}).map((m): TarMember => ({
  ...m,
  path: Buffer.from(m.path, 'latin1'),
  linkTarget: Buffer.from(m.linkTarget, 'latin1'),
  xattrs: m.xattrs.map(([name, value]) => [Buffer.from(name, 'latin1'), value]),
  longNames: m.longNames === 'prefix' && !splittable(Buffer.from(m.path, 'latin1')) ? 'pax' : m.longNames,
}));
const members = fc.array(member, { maxLength: 8 });

function splittable(bytes: Buffer): boolean {
  for (let i = Math.min(bytes.length - 1, 155); i > 0; i--) {
    if (bytes[i] === 0x2f && bytes.length - i - 1 <= 100 && bytes.length - i - 1 > 0) return true;
  }
  return false;
}

const stripSlashes = (text: string): string => text.replace(/\/+$/, '');

/** What the reader must deliver for a written member (erofs-utils 1.8.10 naming rules). */
function expected(m: TarMember): unknown {
  const raw = Buffer.from(m.path as Uint8Array).toString('latin1');
  let name: string;
  if (raw.length <= 100) name = stripSlashes(raw);
  else if (m.longNames === 'gnu') name = raw; // GNU long names keep their trailing slashes
  else if (m.longNames === 'prefix') {
    const split = splitAt(raw);
    const prefix = raw.slice(0, split);
    name = stripSlashes(prefix.endsWith('/') ? prefix + raw.slice(split + 1) : raw);
  } else name = stripSlashes(raw);
  const type = m.type!;
  const link = Buffer.from(m.linkTarget as Uint8Array).toString('latin1');
  const xattrs = new Map<string, string>();
  for (const [key, value] of m.xattrs!) xattrs.set(Buffer.from(key as Uint8Array).toString('latin1'), Buffer.from(value as Uint8Array).toString('hex'));
  return {
    path: name === '' ? '.' : name,
    type: type === 'directory' ? 'directory' : type,
    mode: m.mode,
    uid: m.uid,
    gid: m.gid,
    mtime: m.mtime,
    size: type === 'file' ? (m.data as Uint8Array).length : 0,
    linkTarget: type === 'hardlink' || type === 'symlink' ? link : undefined,
    dev: type === 'char' || type === 'block' ? [m.devMajor, m.devMinor] : [0, 0],
    xattrs: [...xattrs].filter(([key]) => key !== ''),
    data: type === 'file' ? Buffer.from(m.data as Uint8Array).toString('hex') : '',
  };
}

function splitAt(raw: string): number {
  for (let i = Math.min(raw.length - 1, 155); i > 0; i--) if (raw[i] === '/' && raw.length - i - 1 <= 100 && raw.length - i - 1 > 0) return i;
  throw new Error('unsplittable');
}

function delivered(result: ParseResult): unknown[] {
  return result.members.map(({ entry, data }) => ({
    path: entry.path, type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, size: entry.size,
    linkTarget: entry.linkTarget, dev: [entry.devMajor, entry.devMinor],
    xattrs: entry.xattrs.map((x) => [x.name, Buffer.from(x.value).toString('hex')]), data: data.toString('hex'),
  }));
}

function build(list: TarMember[]): { archive: Uint8Array; headers: number[] } {
  const builder = new TarBuilder();
  const headers = list.map((m) => builder.add(m));
  return { archive: builder.finish(), headers };
}

/** Cuts bytes into chunks at the given fractions of its length. */
function split(archive: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * archive.length)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, archive.length]) {
    chunks.push(archive.subarray(start, point));
    start = point;
  }
  return chunks;
}

test('written members read back field for field', (t) => {
  fc.assert(fc.property(members, (list) => {
    const { archive } = build(list);
    const result = parseChunks(archive);
    deepStrictEqual(delivered(result), list.map(expected));
    deepStrictEqual(result.warnings, []);
  }), { numRuns: 300 });
  t.pass();
});

test('chunk boundaries do not change what is delivered', (t) => {
  const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 });
  fc.assert(fc.property(members, cuts, (list, at) => {
    const { archive } = build(list);
    deepStrictEqual(parseChunks(split(archive, at)), parseChunks(archive));
  }), { numRuns: 200 });
  const { archive } = build([{ path: 'a', data: new Uint8Array(5000).fill(1) }, { path: 'b'.repeat(300), type: 'symlink', linkTarget: 'c' }]);
  const oneByte = Array.from(archive, (byte) => Uint8Array.of(byte));
  t.deepEqual(parseChunks(oneByte), parseChunks(archive));
});

/** Parses damaged input: a LayerFormatError is fine, and so is a valid parse; nothing else is. */
function survives(chunks: Uint8Array[]): boolean {
  try {
    parseChunks(chunks);
  } catch (error) {
    if (!(error instanceof LayerFormatError)) throw error;
  }
  return true;
}

test('damaged headers give a LayerFormatError or a valid parse', (t) => {
  const damage = fc.array(fc.tuple(fc.nat(), fc.nat({ max: BLOCK - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 });
  fc.assert(fc.property(members.filter((l) => l.length > 0), damage, (list, flips) => {
    const { archive, headers } = build(list);
    const copy = archive.slice();
    for (const [which, at, xor] of flips) copy[headers[which % headers.length]! + at]! ^= xor;
    return survives([copy]);
  }), { numRuns: 500 });
  t.pass();
});

test('bytes damaged anywhere, and truncation anywhere, give a LayerFormatError or a valid parse', (t) => {
  const damage = fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 1, max: 255 })), { maxLength: 8 });
  fc.assert(fc.property(members, damage, fc.double({ min: 0, max: 1, noNaN: true }), (list, flips, keep) => {
    const { archive } = build(list);
    const copy = archive.slice();
    for (const [at, xor] of flips) copy[Math.floor(at * copy.length)]! ^= xor;
    return survives([copy.subarray(0, Math.floor(keep * copy.length))]);
  }), { numRuns: 500 });
  t.pass();
});

test('every truncation of a non-empty archive before its end marker is refused', (t) => {
  fc.assert(fc.property(members.filter((l) => l.length > 0), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (list, keep) => {
    const { archive } = build(list);
    const end = archive.length - 2 * BLOCK;
    try {
      parseChunks(archive.subarray(0, Math.floor(keep * end)));
    } catch (error) {
      return error instanceof LayerFormatError;
    }
    return false;
  }), { numRuns: 200 });
  t.pass();
});
