import test from 'ava';
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import {
  DIGESTS_PER_HASH_BLOCK,
  MAX_SALT_BYTES,
  parseSaltHex,
  pinnedSalt,
  saltToHex,
  verityParams,
} from '../../../../snapshotter/layer/verity/params.js';

test('the pinned contract is the one Delivery Kit signs', (t) => {
  t.deepEqual({ ...verityParams }, {
    hashAlgorithm: 'sha256',
    digestBytes: 32,
    dataBlockBytes: 4096,
    hashBlockBytes: 4096,
    format: 1,
    saltHex: 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b',
    superblock: false,
  });
  t.true(Object.isFrozen(verityParams));
  t.is(createHash(verityParams.hashAlgorithm).digest().length, verityParams.digestBytes);
  t.is(DIGESTS_PER_HASH_BLOCK, 128);
});

test('pinnedSalt() hands out copies', (t) => {
  const salt = pinnedSalt();
  t.is(saltToHex(salt), verityParams.saltHex);
  salt.fill(0);
  t.is(saltToHex(pinnedSalt()), verityParams.saltHex);
});

test('salt hex parses as veritysetup --salt does', (t) => {
  t.is(saltToHex(parseSaltHex('00FFaa')), '00ffaa');
  t.is(parseSaltHex('-').length, 0);
  t.is(parseSaltHex('').length, 0);
  t.is(parseSaltHex('ab'.repeat(MAX_SALT_BYTES)).length, MAX_SALT_BYTES);
});

test('bad salts are refused with a hint', (t) => {
  for (const bad of ['abc', 'zz', '0x00', 'ab cd', 'ab'.repeat(MAX_SALT_BYTES + 1)]) {
    const err = t.throws(() => parseSaltHex(bad), { instanceOf: InvalidArgumentError }, bad);
    t.truthy(err?.hint, bad);
  }
});

test('saltToHex respects the view of a larger buffer', (t) => {
  const backing = Buffer.from('ffaabbccff', 'hex');
  t.is(saltToHex(backing.subarray(1, 4)), 'aabbcc');
});
