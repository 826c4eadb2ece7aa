/**
 * Mount destinations resolved inside an image the way runc resolves them
 * (filepath-securejoin's SecureJoin): symlinks followed, confined to the root.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { resolveInRoot } from '../../../../snapshotter/service/rootfs/resolve.js';
import { literalTree, type LiteralLayer } from '../../../support/literal-layers.js';

async function resolve(layer: LiteralLayer, path: string): Promise<string> {
  return `/${(await resolveInRoot(path, literalTree([layer]))).join('/')}`;
}

test("Debian's /var/run -> /run and /etc/resolv.conf -> ../run/resolv.conf", async (t) => {
  const image: LiteralLayer = { 'var/run': { link: '/run' }, run: { dir: true }, 'etc/resolv.conf': { link: '../run/resolv.conf' } };
  t.is(await resolve(image, '/var/run/secrets/kubernetes.io/serviceaccount'), '/run/secrets/kubernetes.io/serviceaccount');
  t.is(await resolve(image, '/etc/resolv.conf'), '/run/resolv.conf');
  t.is(await resolve(image, '/etc/hosts'), '/etc/hosts', 'a missing name is taken as it is');
});

test('symlinks never lead out of the root: .. stops at it, absolute targets start at it', async (t) => {
  // securejoin's own cases: etc -> somepath, etclink -> ../../…/etc, passwd -> /../../…/etc/passwd.
  const image: LiteralLayer = {
    etc: { link: 'somepath' },
    etclink: { link: '../../../../../../../../../../../../../etc' },
    passwd: { link: '/../../../../../../../../../../../../../etc/passwd' },
  };
  t.is(await resolve(image, 'passwd'), '/somepath/passwd');
  t.is(await resolve(image, 'etclink'), '/somepath');
  t.is(await resolve(image, 'etc/test'), '/somepath/test');
  t.is(await resolve(image, 'etc/test/..'), '/somepath');
  t.is(await resolve(image, '/../../../../etc/passwd/..'), '/somepath');
});

test('without symlinks it is a lexical clean of the path under the root', async (t) => {
  const cases: [string, string][] = [
    ['even/more/path', '/even/more/path'],
    ['also/a/../path/././/with/some/./.././junk', '/also/path/with/junk'],
    ['../../../../../../somedir', '/somedir'],
    ['../../../', '/'],
    ['./../../.././etc passwd', '/etc passwd'],
  ];
  for (const [path, expected] of cases) t.is(await resolve({}, path), expected, path);
});

test('.. after a symlink climbs from where the symlink leads, not lexically', async (t) => {
  const image: LiteralLayer = { 'a/link': { link: '/x/y/z' }, 'x/y/z': { dir: true } };
  t.is(await resolve(image, '/a/link/../w'), '/x/y/w');
});

test('chains of symlinks, and a component below a file', async (t) => {
  const image: LiteralLayer = { a: { link: 'b' }, b: { link: '/c/d' }, 'c/d': { dir: true }, 'f': { file: true } };
  t.is(await resolve(image, '/a/e'), '/c/d/e');
  t.is(await resolve(image, '/f/below'), '/f/below', 'not a symlink: joined as it is (runc then fails to mount there)');
});

test('a symlink loop is refused (ELOOP) after 255 symlinks', async (t) => {
  const image: LiteralLayer = { a: { link: 'b' }, b: { link: 'a' } };
  const err = await t.throwsAsync(resolveInRoot('/a/x', literalTree([image])), { instanceOf: InvalidArgumentError });
  t.regex(err!.message, /more than 255 symlinks \(ELOOP\)/);
});
