import test from 'ava';
import { ConfigError } from '../../../snapshotter/core/errors.js';
import {
  DEFAULT_CONTAINERD_ADDRESS,
  DEFAULT_MOUNTPOINT_DIRS,
  DEFAULT_MOUNTPOINT_FILES,
  parseSnapshotterConfig,
} from '../../../snapshotter/core/config.js';

test('defaults: containerd at its usual socket, only protected images read-only, none protected, the runc mount targets', (t) => {
  const config = parseSnapshotterConfig('', 'f.toml');
  t.is(config.containerdAddress, DEFAULT_CONTAINERD_ADDRESS);
  t.deepEqual(config.rootfs, { readOnly: 'protected', protectedImages: [], mountpointDirs: DEFAULT_MOUNTPOINT_DIRS, mountpointFiles: DEFAULT_MOUNTPOINT_FILES });
  t.true(Object.isFrozen(config.rootfs.protectedImages));
  t.true(DEFAULT_MOUNTPOINT_FILES.includes('/etc/resolv.conf') && DEFAULT_MOUNTPOINT_DIRS.includes('/tmp'));
});

test('a full [rootfs] table is read; paths are normalized and deduplicated', (t) => {
  const config = parseSnapshotterConfig(
    [
      'containerd_address = "/run/k3s/containerd/containerd.sock"',
      '[rootfs]',
      'read_only = "all"',
      'protected_images = ["registry.example/d8/*", "registry.example/app"]',
      'mountpoint_dirs = ["/proc/", "/proc", "/run"]',
      'mountpoint_files = ["/etc/hosts"]',
    ].join('\n'),
    'f.toml',
  );
  t.is(config.containerdAddress, '/run/k3s/containerd/containerd.sock');
  t.deepEqual(config.rootfs, {
    readOnly: 'all',
    protectedImages: ['registry.example/d8/*', 'registry.example/app'],
    mountpointDirs: ['/proc', '/run'],
    mountpointFiles: ['/etc/hosts'],
  });
});

const refused: Array<[string, string, RegExp]> = [
  ['relative containerd socket', 'containerd_address = "containerd.sock"', /containerd_address = "containerd.sock" is not an absolute path/],
  ['unknown read_only mode', '[rootfs]\nread_only = "some"', /rootfs\.read_only = "some" is not one of "protected", "all"/],
  ['patterns not a list', '[rootfs]\nprotected_images = "r/*"', /rootfs\.protected_images must be an array of strings/],
  ['an empty pattern', '[rootfs]\nprotected_images = [""]', /rootfs\.protected_images has "", which is empty/],
  ['a pattern with a space', '[rootfs]\nprotected_images = ["r/a b"]', /contains white space/],
  ['a relative mount point', '[rootfs]\nmountpoint_dirs = ["proc"]', /rootfs\.mountpoint_dirs has "proc", which is not an absolute path/],
  ['a path both a file and a dir', '[rootfs]\nmountpoint_dirs = ["/etc/hosts"]\nmountpoint_files = ["/etc/hosts"]', /\/etc\/hosts, which rootfs\.mountpoint_dirs lists too/],
  ['a file with entries below it', '[rootfs]\nmountpoint_dirs = ["/etc/hosts/x"]\nmountpoint_files = ["/etc/hosts"]', /would have to be a directory for \/etc\/hosts\/x/],
  ['an unknown key in [rootfs]', '[rootfs]\nprotected = []', /unknown key rootfs\.protected/],
];

for (const [title, text, message] of refused) {
  test(`refused: ${title}`, (t) => {
    const err = t.throws(() => parseSnapshotterConfig(text, 'f.toml'), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.regex(err!.hint ?? '', /configuration\.md/);
  });
}
