/**
 * The folder layout is the architecture: imports flow
 * core ← layer ← oci ← signature ← policy/image ← service ← cli, and only the
 * snapshotter's mount code (and its xattr reader) touches the native addon, so
 * the builder path (layer, oci, signature, image) runs without root or addon.
 * This reads the sources and checks every relative import against that.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const sources = join(root, 'snapshotter');

/** Which top-level folders each folder may import from (itself always). */
const allowed: Record<string, readonly string[]> = {
  core: ['gen'],
  layer: ['core'],
  native: ['core'],
  oci: ['core', 'layer'],
  signature: ['core', 'oci'],
  policy: ['core', 'oci', 'signature'],
  image: ['core', 'layer', 'oci', 'signature'],
  service: ['core', 'gen', 'layer', 'native', 'oci', 'signature', 'policy', 'image'],
  cli: ['core', 'gen', 'layer', 'native', 'oci', 'signature', 'policy', 'image', 'service'],
};

/** Files of service/ that may use the native addon, and why. */
const nativeUsers = [
  /^service\/mounts\//, // loop devices, mounts and device-mapper: what the snapshotter exists to do
  /^service\/layers\/xattrs\.ts$/, // Node has no xattr API; Commit reads an upper dir's xattrs
];

function* typescriptFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* typescriptFiles(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

interface Import {
  file: string;
  target: string;
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const found: Import[] = [];
  const pattern = /(import\s+type\s[^;]*?from\s*|import\s[^;]*?from\s*|export\s[^;]*?from\s*|import\()\s*'(\.[^']+)'/g;
  for (const match of text.matchAll(pattern)) {
    const target = relative(sources, resolve(dirname(file), match[2]!));
    found.push({ file: relative(sources, file), target, typeOnly: match[1]!.startsWith('import type') });
  }
  return found;
}

const topOf = (path: string) => path.split('/')[0]!;
const all = [...typescriptFiles(sources)].filter((f) => !relative(sources, f).startsWith('gen/')).flatMap(importsOf);

test('every folder imports only from the folders below it', (t) => {
  const violations = all.filter(({ file, target, typeOnly }) => {
    const from = topOf(file);
    const to = topOf(target);
    if (to === from || target.startsWith('..')) return false;
    // Type-only imports carry no code: the native facade names the layer's ByteString type.
    if (typeOnly) return false;
    return !(allowed[from] ?? []).includes(to);
  });
  t.deepEqual(violations.map((v) => `${v.file} imports ${v.target}`), []);
  t.true(all.length > 100, 'the import scan found the sources');
});

test('only the snapshotter mount code and its xattr reader use the native addon', (t) => {
  const users = all.filter(({ file, target, typeOnly }) => !typeOnly && topOf(target) === 'native' && topOf(file) !== 'native' && topOf(file) !== 'cli');
  const strays = users.filter(({ file }) => !nativeUsers.some((rule) => rule.test(file)));
  t.deepEqual(strays.map((v) => `${v.file} imports ${v.target}`), []);
  t.true(users.length > 0);
});

test('the builder path loads neither the addon nor the daemon', (t) => {
  const builder = ['layer', 'oci', 'signature', 'image', 'policy'];
  const reaching = all.filter(({ file, target, typeOnly }) => !typeOnly && builder.includes(topOf(file)) && ['native', 'service', 'cli'].includes(topOf(target)));
  t.deepEqual(reaching.map((v) => `${v.file} imports ${v.target}`), []);
});
