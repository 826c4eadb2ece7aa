/** An image's merged tree read from its layers the way overlayfs merges them. */
import test from 'ava';
import { literalTree } from '../../../support/literal-layers.js';

const typeOf = async (tree: ReturnType<typeof literalTree>, path: string) => (await tree.lookup(path === '' ? [] : path.split('/')))?.type;

test('the topmost layer that has a name decides what it is', async (t) => {
  const tree = literalTree([{ 'var/run': { link: '/run' } }, { 'var/run': { dir: true }, 'var/run/old': { file: true } }]);
  t.is(await typeOf(tree, 'var/run'), 'symlink');
  t.is((await tree.lookup(['var', 'run']))?.target, '/run');
  t.is(await typeOf(tree, 'var/run/old'), undefined, 'a non-directory hides the directory below it');
});

test('directories merge with the ones below; a whiteout hides a name; an opaque directory hides what is below it', async (t) => {
  const tree = literalTree([
    { 'etc/new': { file: true }, 'etc/gone': { whiteout: true }, opaque: { dir: true, opaque: true }, 'opaque/top': { file: true } },
    { 'etc/old': { file: true }, 'etc/gone': { file: true }, 'opaque/below': { file: true } },
  ]);
  t.is(await typeOf(tree, 'etc/new'), 'file');
  t.is(await typeOf(tree, 'etc/old'), 'file');
  t.is(await typeOf(tree, 'etc/gone'), undefined);
  t.is(await typeOf(tree, 'opaque/top'), 'file');
  t.is(await typeOf(tree, 'opaque/below'), undefined);
});

test('a whiteout of a directory hides everything below it, also where a lower layer has it', async (t) => {
  const tree = literalTree([{ d: { whiteout: true } }, { 'd/x': { file: true } }]);
  t.is(await typeOf(tree, 'd'), undefined);
  t.is(await typeOf(tree, 'd/x'), undefined);
});

test("a merged directory has its topmost layer's attributes, without overlay's own xattrs", async (t) => {
  const tree = literalTree([
    { run: { dir: true, mode: 0o700, uid: 7, opaque: true, xattrs: { 'user.a': 'b' } } },
    { run: { dir: true, mode: 0o755, uid: 0 } },
  ]);
  const run = await tree.lookup(['run']);
  t.like(run, { type: 'directory', mode: 0o700, uid: 7 });
  t.deepEqual(run?.xattrs.map((x) => x.name), ['user.a']);
});
