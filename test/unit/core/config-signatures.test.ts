import test from 'ava';
import { ConfigError } from '../../../snapshotter/core/errors.js';
import { parseSnapshotterConfig } from '../../../snapshotter/core/config.js';

test('defaults: no image must be signed, the node trust directories', (t) => {
  const config = parseSnapshotterConfig('', 'f.toml');
  t.deepEqual(config.signatures, { requiredImages: [], trustDirs: undefined });
});

test('a full [signatures] table is read; trust paths are normalized and deduplicated', (t) => {
  const config = parseSnapshotterConfig(
    ['[signatures]', 'required_images = ["registry.example/d8/*"]', 'trust_dirs = ["/etc/ci/trust.d/", "/etc/ci/trust.d", "/etc/ci/root.pem"]'].join('\n'),
    'f.toml',
  );
  t.deepEqual(config.signatures, { requiredImages: ['registry.example/d8/*'], trustDirs: ['/etc/ci/trust.d', '/etc/ci/root.pem'] });
  t.true(Object.isFrozen(config.signatures.trustDirs));
});

test('an empty trust_dirs is kept: no trust roots at all, not the defaults', (t) => {
  t.deepEqual(parseSnapshotterConfig('[signatures]\ntrust_dirs = []', 'f.toml').signatures.trustDirs, []);
});

const refused: Array<[string, string, RegExp]> = [
  ['relative trust dir', '[signatures]\ntrust_dirs = ["trust.d"]', /signatures\.trust_dirs has "trust\.d", which is not an absolute path/],
  ['pattern with white space', '[signatures]\nrequired_images = ["a b"]', /signatures\.required_images has "a b"/],
  ['wrong type', '[signatures]\nrequired_images = "registry/*"', /signatures\.required_images must be an array of strings/],
  ['unknown key', '[signatures]\nrequired = ["x"]', /unknown key signatures\.required$/],
];

for (const [title, text, message] of refused) {
  test(`refused: ${title}`, (t) => {
    const err = t.throws(() => parseSnapshotterConfig(text, 'f.toml'), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.regex(err!.hint ?? '', /\S/);
  });
}
