/**
 * `integrityctl layer convert` as a user runs it: the compiled CLI in a fresh
 * process, argument arrays, real files. Damaged and hostile layers must fail
 * with exit status 2, a message that names the problem and where it is, and
 * leave nothing behind in the output directory (no image, no hash file, no
 * temporary). Good layers must give the same bytes from a path, from stdin
 * and in every compression, run after run.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { missingPrograms, runCommand } from '../../support/command.js';
import { base256, patchHeader, tar, TarBuilder, tarHeader, type TarMember } from '../../support/tar-writer.js';

const CLI = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const ZSTD = '/usr/bin/zstd';
const skipZstd = missingPrograms({ [ZSTD]: 'zstd' });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI (no shell); `input` goes to stdin. */
function cli(args: readonly string[], input?: Uint8Array): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [CLI, ...args], { maxBuffer: 16 << 20, timeout: 60_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (err && typeof code !== 'number') return reject(err);
      resolve({ code: code as number, stdout, stderr });
    });
    child.stdin!.on('error', () => undefined); // the CLI may exit before reading all of stdin
    child.stdin!.end(input);
  });
}

/** A temp dir with `in/` (layers) and `out/` (what the CLI writes), removed after the test. */
function workDir(t: ExecutionContext): { input: (name: string, bytes: Uint8Array) => string; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'convert-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'in'));
  mkdirSync(join(dir, 'out'));
  return {
    input: (name, bytes) => {
      const path = join(dir, 'in', name);
      writeFileSync(path, bytes);
      return path;
    },
    out: join(dir, 'out'),
  };
}

function pattern(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 131 + seed * 17 + (i >> 9)) & 0xff);
}

/** A small but real layer: directories, files across block boundaries, a symlink, a hard link. */
function goodLayer(): Uint8Array {
  return tar([
    { path: 'etc', type: 'directory' },
    { path: 'etc/hosts', data: '127.0.0.1 localhost\n' },
    { path: 'usr/bin/tool', data: pattern(70_000, 1), mode: 0o755 },
    { path: 'usr/lib/libx.so.1', data: pattern(4097, 2) },
    { path: 'usr/lib/libx.so', type: 'symlink', linkTarget: 'libx.so.1' },
    { path: 'usr/bin/tool2', type: 'hardlink', linkTarget: 'usr/bin/tool' },
  ]);
}

// ------------------------------------------------------------ bad input

interface BadLayer {
  bytes: Uint8Array;
  /** What stderr must say: the problem, and the entry and offset where there is one. */
  stderr: RegExp;
}

function damagedGzip(): Record<string, BadLayer> {
  const gz = gzipSync(goodLayer());
  const flipped = (at: number): Uint8Array => {
    const copy = Uint8Array.from(gz);
    copy[at]! ^= 0xff;
    return copy;
  };
  return {
    'truncated gzip': { bytes: gz.subarray(0, gz.length >> 1), stderr: /gzip stream is corrupt or truncated \(unexpected end of file\) after about \d+ compressed bytes/ },
    // Byte 10 is the first byte of the deflate stream (after the 10-byte gzip header): its block header.
    'gzip with a flipped byte in the deflate stream': { bytes: flipped(10), stderr: /gzip stream is corrupt or truncated \(.+\) after about \d+ compressed bytes/ },
    // The trailer is CRC32 then ISIZE, 4 bytes each.
    'gzip with a flipped byte in the CRC': { bytes: flipped(gz.length - 8), stderr: /gzip stream is corrupt or truncated \(incorrect data check\)/ },
  };
}

function damagedTars(): Record<string, BadLayer> {
  const layers: Record<string, BadLayer> = {};
  const add = (name: string, members: TarMember[], bad: TarMember, stderr: (offset: number) => RegExp): void => {
    const builder = new TarBuilder();
    for (const member of members) builder.add(member);
    const offset = builder.add(bad);
    layers[name] = { bytes: builder.finish(), stderr: stderr(offset) };
  };
  {
    const builder = new TarBuilder();
    builder.add({ path: 'etc', type: 'directory' });
    const offset = builder.add({ path: 'etc/hosts', data: pattern(100_000, 3) });
    const whole = builder.finish();
    layers['tar truncated inside file data'] = {
      bytes: whole.subarray(0, offset + 512 + 5000),
      stderr: new RegExp(`tar archive ends inside the data of a member: 95000 of 100000 bytes missing \\(entry "etc/hosts", offset ${offset}\\)`),
    };
    layers['tar without its end-of-archive marker'] = {
      bytes: whole.subarray(0, whole.length - 1024),
      stderr: /tar archive ends without the end-of-archive marker \(two zero blocks\) \(offset \d+\)/,
    };
  }
  add('bad header checksum', [{ path: 'a', data: 'a' }], { path: 'bad', data: 'b', badChecksum: true },
    (o) => new RegExp(`tar header checksum mismatch \\(entry "bad", offset ${o}\\)`));
  add('a ".." component', [{ path: 'a', type: 'directory' }], { path: 'a/../../etc/passwd', data: 'root::0:0::/:/bin/sh\n' },
    (o) => new RegExp(`path has a "\\.\\." component \\(entry "a/\\.\\./\\.\\./etc/passwd", offset ${o}\\)`));
  add('an absolute path', [], { path: '/etc/passwd', data: 'x' }, (o) => new RegExp(`path is absolute \\(entry "/etc/passwd", offset ${o}\\)`));
  add('a name of 256 bytes', [{ path: 'd', type: 'directory' }], { path: `d/${'n'.repeat(256)}`, data: 'x' },
    (o) => new RegExp(`path has a component of 256 bytes \\(entry "d/n{256}", offset ${o}\\)`));
  add('a hard link to a missing entry', [{ path: 'a', data: 'x' }], { path: 'b', type: 'hardlink', linkTarget: 'missing' },
    (o) => new RegExp(`hard link target "missing" does not exist \\(entry "b", offset ${o}\\)`));
  add('a file below a symlink (a -> /etc, then a/b)', [{ path: 'a', type: 'symlink', linkTarget: '/etc' }], { path: 'a/b', data: 'x' },
    (o) => new RegExp(`path goes through a non-directory \\(entry "a/b", offset ${o}\\)`));
  add('a hard link through a symlink', [{ path: 'a', type: 'symlink', linkTarget: '/etc' }], { path: 'b', type: 'hardlink', linkTarget: 'a/shadow' },
    (o) => new RegExp(`path goes through a non-directory \\(entry "b", offset ${o}\\)`));
  add('directory, then file, then directory at one path', [{ path: 'p', type: 'directory' }, { path: 'p', data: 'x' }], { path: 'p', type: 'directory' },
    (o) => new RegExp(`a directory that was replaced by a non-directory becomes a directory again \\(entry "p", offset ${o}\\)`));
  {
    const header = tarHeader({ name: 'huge', typeflag: '0', size: 0 });
    const bytes = patchHeader(concatBlocks(header, 2), 0, 124, Array.from(base256(2n ** 62n, 12)));
    layers['a base-256 size of 2^62'] = { bytes, stderr: /tar header size 4611686018427387904 is outside 0\.\.\d+ \(entry "huge", offset 0\)/ };
  }
  {
    const header = tarHeader({ name: 'owned', typeflag: '0', size: 0 });
    const bytes = patchHeader(concatBlocks(header, 2), 0, 108, Array.from(base256(2n ** 40n, 8)));
    layers['a base-256 uid of 2^40'] = { bytes, stderr: /tar header uid 1099511627776 is outside 0\.\.4294967295 \(entry "owned", offset 0\)/ };
  }
  {
    const builder = new TarBuilder();
    builder.add({ path: 'ok', data: pattern(3000, 4) });
    const offset = builder.add({ path: '../escape', data: 'x' });
    layers['a bad tar inside gzip (offsets count in the uncompressed tar)'] = {
      bytes: gzipSync(builder.finish()),
      stderr: new RegExp(`path has a "\\.\\." component \\(entry "\\.\\./escape", offset ${offset}\\)`),
    };
  }
  return layers;
}

function concatBlocks(header: Uint8Array, zeroBlocks: number): Uint8Array {
  const out = new Uint8Array(header.length + 512 * zeroBlocks);
  out.set(header);
  return out;
}

/** Runs one bad layer with and without --hash-file and checks the contract for each. */
async function refuses(t: ExecutionContext, layer: BadLayer): Promise<void> {
  const { input, out } = workDir(t);
  const path = input('layer', layer.bytes);
  for (const extra of [[], ['--hash-file', join(out, 'layer.verity')]]) {
    const run = await cli(['layer', 'convert', path, '-o', join(out, 'layer.erofs'), ...extra]);
    t.is(run.code, 2, `exit status (stderr: ${run.stderr})`);
    t.regex(run.stderr, layer.stderr);
    t.regex(run.stderr, /^\s+hint: /m, 'a hint says what to do');
    t.notRegex(run.stderr, /unexpected error|\n\s+at /, 'no stack trace');
    t.is(run.stdout, '');
    t.deepEqual(readdirSync(out), [], `left behind in the output directory (${extra.join(' ') || 'no hash file'})`);
  }
}

for (const [name, layer] of Object.entries({ ...damagedGzip(), ...damagedTars() })) {
  test.serial(`refused: ${name}`, (t) => refuses(t, layer));
}

/** zstd damage made with the zstd tool itself, so the frames are what real layers carry. */
async function zstdLayer(t: ExecutionContext): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'convert-cli-zstd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'layer.tar'), goodLayer());
  await runCommand(ZSTD, ['-q', '-19', '--check', join(dir, 'layer.tar'), '-o', join(dir, 'layer.tar.zst')]);
  return readFileSync(join(dir, 'layer.tar.zst'));
}

(skipZstd ? test.serial.skip : test.serial)('refused: truncated zstd', async (t) => {
  const zst = await zstdLayer(t);
  await refuses(t, { bytes: zst.subarray(0, zst.length >> 1), stderr: /zstd stream is truncated: it ends inside a frame after \d+ compressed bytes/ });
});

(skipZstd ? test.serial.skip : test.serial)('refused: zstd with a flipped byte in the compressed data and in the checksum', async (t) => {
  const zst = await zstdLayer(t);
  for (const at of [zst.length >> 1, zst.length - 2]) {
    const bytes = Uint8Array.from(zst);
    bytes[at]! ^= 0x10;
    await refuses(t, { bytes, stderr: /zstd stream is corrupt: .+ in frame 0 \(starting at compressed byte 0\)/ });
  }
});

// ------------------------------------------------------------ outputs and usage

test.serial('refused before reading: unusable output paths', async (t) => {
  const { input, out } = workDir(t);
  const layer = input('layer.tar', goodLayer());
  mkdirSync(join(out, 'a-dir'));
  const cases: [args: string[], status: number, stderr: RegExp][] = [
    [['-o', join(out, 'a-dir')], 2, /the output .*a-dir is a directory/],
    [['-o', join(out, 'x.erofs'), '--hash-file', join(out, 'a-dir')], 2, /the hash file .*a-dir is a directory/],
    [['-o', join(out, 'x.erofs'), '--hash-file', `${out}/./x.erofs`], 2, /the hash file and the output are the same file/],
    [['-o', join(out, 'missing', 'x.erofs')], 1, /the directory of the output .*missing\/x\.erofs does not exist/],
    [['-o', join(out, 'x.erofs'), '--hash-file', join(out, 'missing', 'x.verity')], 1, /the directory of the hash file .* does not exist/],
  ];
  for (const [args, status, stderr] of cases) {
    const run = await cli(['layer', 'convert', layer, ...args]);
    t.is(run.code, status, run.stderr);
    t.regex(run.stderr, stderr);
    t.deepEqual(readdirSync(out), ['a-dir'], args.join(' '));
  }
});

test.serial('a missing input file is bad input (exit status 2) with a clear error', async (t) => {
  const { out } = workDir(t);
  const run = await cli(['layer', 'convert', join(out, 'no-such-layer.tar.gz'), '-o', join(out, 'x.erofs')]);
  t.is(run.code, 2);
  t.regex(run.stderr, /^integrityctl: layer .*no-such-layer\.tar\.gz does not exist\n\s+hint: /);
  t.deepEqual(readdirSync(out), []);
});

test.serial('--help describes the command', async (t) => {
  const run = await cli(['layer', 'convert', '--help']);
  t.is(run.code, 0);
  t.regex(run.stdout, /^Usage: integrityctl layer convert \[options\] <layer>/);
  for (const option of ['-o, --output <file>', '--hash-file <file>', '--json']) t.true(run.stdout.includes(option), option);
  t.regex(run.stdout, /mkfs\.erofs -Uclear -T1750791050 -x-1 -Enoinline_data --aufs --tar=f/);
});

test.serial('--json prints exactly the documented keys', async (t) => {
  const { input, out } = workDir(t);
  const layer = input('layer.tar', goodLayer());
  const withHash = await cli(['layer', 'convert', layer, '-o', join(out, 'a.erofs'), '--hash-file', join(out, 'a.verity'), '--json']);
  t.is(withHash.code, 0, withHash.stderr);
  const result = JSON.parse(withHash.stdout) as Record<string, unknown>;
  t.deepEqual(Object.keys(result), ['erofs', 'bytes', 'sha256', 'rootHash', 'salt', 'dataBlocks', 'hashFile']);
  const image = readFileSync(join(out, 'a.erofs'));
  t.is(result.erofs, join(out, 'a.erofs'));
  t.is(result.bytes, image.length);
  t.regex(String(result.sha256), /^[0-9a-f]{64}$/);
  t.regex(String(result.rootHash), /^[0-9a-f]{64}$/);
  t.is(result.salt, 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b');
  t.is(result.dataBlocks, image.length / 4096);
  t.is(result.hashFile, join(out, 'a.verity'));
  t.is(withHash.stdout.split('\n').length, 2, 'one line of JSON');

  const without = await cli(['layer', 'convert', layer, '-o', join(out, 'b.erofs'), '--json']);
  t.is(without.code, 0, without.stderr);
  const second = JSON.parse(without.stdout) as Record<string, unknown>;
  t.deepEqual(Object.keys(second), Object.keys(result));
  t.is(second.hashFile, null);
  t.is(second.rootHash, result.rootHash);
  t.deepEqual(readdirSync(out).sort(), ['a.erofs', 'a.verity', 'b.erofs']);
});

test.serial('the same layer gives the same bytes: twice, from stdin, and in every compression', async (t) => {
  const { input, out } = workDir(t);
  const plain = goodLayer();
  const layers: Record<string, string> = { tar: input('layer.tar', plain), gzip: input('layer.tar.gz', gzipSync(plain)) };
  if (!skipZstd) {
    await runCommand(ZSTD, ['-q', layers.tar!, '-o', join(out, '..', 'in', 'layer.tar.zst')]);
    layers.zstd = join(out, '..', 'in', 'layer.tar.zst');
  }
  const convert = async (name: string, source: string, stdin?: Uint8Array) => {
    const run = await cli(['layer', 'convert', source, '-o', join(out, `${name}.erofs`), '--hash-file', join(out, `${name}.verity`), '--json'], stdin);
    t.is(run.code, 0, `${name}: ${run.stderr}`);
    const { rootHash, sha256 } = JSON.parse(run.stdout) as { rootHash: string; sha256: string };
    return { rootHash, sha256, image: readFileSync(join(out, `${name}.erofs`)), tree: readFileSync(join(out, `${name}.verity`)) };
  };
  const first = await convert('first', layers.gzip!);
  const runs = {
    again: await convert('again', layers.gzip!),
    stdin: await convert('stdin', '-', readFileSync(layers.gzip!)),
    tar: await convert('tar', layers.tar!),
    ...(layers.zstd ? { zstd: await convert('zstd', layers.zstd) } : {}),
  };
  for (const [name, run] of Object.entries(runs)) {
    t.true(run.image.equals(first.image), `${name}: image bytes differ`);
    t.true(run.tree.equals(first.tree), `${name}: hash tree differs`);
    t.is(run.sha256, first.sha256, name);
    t.is(run.rootHash, first.rootHash, name);
  }
  t.is(readdirSync(out).filter((name) => name.startsWith('.')).length, 0, 'no temporaries');
});

// ------------------------------------------------------------ interrupts

interface Interrupted {
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Starts the CLI; `interrupt` gets the child once it runs and sends it a signal when it wants to. */
function convertUntil(args: readonly string[], interrupt: (child: ChildProcess) => void): Promise<Interrupted> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.stdin!.on('error', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
    interrupt(child);
  });
}

test.serial('SIGINT while the CLI waits for input: it stops at once, says so, dies of the signal and leaves nothing', async (t) => {
  const { out } = workDir(t);
  const layer = gzipSync(tar([{ path: 'data', data: randomBytes(4 << 20) }]));
  const run = await convertUntil(['layer', 'convert', '-', '-o', join(out, 'x.erofs'), '--hash-file', join(out, 'x.verity')], (child) => {
    // More than a pipe holds: 'drain' means the CLI is converting and reading; then stdin stalls, unfinished.
    if (child.stdin!.write(layer.subarray(0, layer.length >> 1))) throw new Error('the pipe took half a layer at once');
    child.stdin!.once('drain', () => child.kill('SIGINT'));
  });
  t.is(run.signal, 'SIGINT', `exit code ${run.code}, stderr: ${run.stderr}`);
  t.regex(run.stderr, /^integrityctl: interrupted by SIGINT; no output was written\n$/);
  t.deepEqual(readdirSync(out), []);
});

test.serial('SIGTERM while the image is being written removes the temporary image and hash file', async (t) => {
  const { input, out } = workDir(t);
  // Uncompressed and big enough that writing the image takes a while after its temporary file appears.
  const layer = input('layer.tar', tar(Array.from({ length: 12 }, (_, i) => ({ path: `d/f${i}`, data: randomBytes(4 << 20) }))));
  let sent = false;
  const run = await convertUntil(['layer', 'convert', layer, '-o', join(out, 'x.erofs'), '--hash-file', join(out, 'x.verity')], (child) => {
    const watcher = watch(out, (_, name) => {
      if (sent || !String(name).startsWith('.tmp-')) return;
      sent = true;
      watcher.close();
      child.kill('SIGTERM');
    });
    child.on('close', () => watcher.close());
  });
  t.true(sent, `no temporary file appeared (stderr: ${run.stderr})`);
  t.is(run.signal, 'SIGTERM', `exit code ${run.code}, stderr: ${run.stderr}`);
  t.regex(run.stderr, /interrupted by SIGTERM; no output was written/);
  t.deepEqual(readdirSync(out), []);
});
