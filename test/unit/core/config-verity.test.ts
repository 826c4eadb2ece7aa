import test from 'ava';
import { ConfigError } from '../../../snapshotter/core/errors.js';
import { parseSnapshotterConfig } from '../../../snapshotter/core/config.js';

test('defaults: verity where the kernel has it, a check a minute, no metrics listener', (t) => {
  const config = parseSnapshotterConfig('', 'f.toml');
  t.is(config.verity, 'auto');
  t.deepEqual(config.status, { intervalSeconds: 60 });
  t.deepEqual(config.metrics, { address: '' });
  t.true(Object.isFrozen(config.status) && Object.isFrozen(config.metrics));
});

test('the verity keys are read', (t) => {
  const config = parseSnapshotterConfig('verity = "required"\n[status]\ninterval_seconds = 5\n[metrics]\naddress = "127.0.0.1:9469"\n', 'f.toml');
  t.is(config.verity, 'required');
  t.is(config.status.intervalSeconds, 5);
  t.is(config.metrics.address, '127.0.0.1:9469');
  t.is(parseSnapshotterConfig('verity = "off"\n[status]\ninterval_seconds = 0', 'f.toml').status.intervalSeconds, 0);
  for (const address of ['[::1]:9469', 'localhost:80', '0.0.0.0:0']) {
    t.is(parseSnapshotterConfig(`[metrics]\naddress = "${address}"`, 'f.toml').metrics.address, address);
  }
});

const refused: Array<[string, string, RegExp]> = [
  ['an unknown mode', 'verity = "on"', /verity = "on" is not one of "required", "auto", "off"/],
  ['a quoted interval', '[status]\ninterval_seconds = "60"', /status\.interval_seconds = "60" is not a whole number from 0 to 86400/],
  ['a fractional interval', '[status]\ninterval_seconds = 1.5', /is not a whole number/],
  ['a negative interval', '[status]\ninterval_seconds = -1', /is not a whole number/],
  ['an address without port', '[metrics]\naddress = "127.0.0.1"', /metrics\.address = "127\.0\.0\.1" is not host:port/],
  ['a port out of range', '[metrics]\naddress = "127.0.0.1:70000"', /is not host:port/],
  ['a URL for an address', '[metrics]\naddress = "http://127.0.0.1:9469"', /is not host:port/],
  ['an unknown key in [status]', '[status]\ninterval = 60', /unknown key status\.interval/],
];

for (const [what, text, message] of refused) {
  test(`refused: ${what}`, (t) => {
    const err = t.throws(() => parseSnapshotterConfig(text, 'f.toml'), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.regex(err!.hint ?? '', /docs\/configuration\.md/);
  });
}
