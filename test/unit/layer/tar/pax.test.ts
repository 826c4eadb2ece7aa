import test from 'ava';
import fc from 'fast-check';
import { LayerFormatError } from '../../../../snapshotter/core/errors.js';
import {
  applyPaxRecords, decodeBase64AsErofs, deliveredXattrs, urlDecode, type PaxOverrides,
} from '../../../../snapshotter/layer/tar/pax.js';
import { bytes, concat, paxRecord } from '../../../support/tar-writer.js';

const apply = (data: Uint8Array | string): PaxOverrides => {
  const into: PaxOverrides = { xattrs: new Map() };
  applyPaxRecords(bytes(data), into, { offset: 0 });
  return into;
};
const ascii = (b: Uint8Array | undefined): number[] => [...(b ?? [])];

test('records are read like sscanf("%d %n"): blanks around the length, the length counting from the record start', (t) => {
  t.is(apply('  14 path=abc\n').path, 'abc');
  t.is(apply('12   path=a\n').path, 'a');
  t.is(apply('+12 path=xy\n').path, 'xy');
  t.is(apply('').path, undefined);
});

test('the value runs from the first = to the newline and may hold = and newlines', (t) => {
  const into = apply(concat([paxRecord('SCHILY.xattr.user.x', 'a=b\nc'), paxRecord('comment', '==')]));
  t.deepEqual(ascii(into.xattrs.get('user.x')), ascii(bytes('a=b\nc')));
});

test('numbers: blanks allowed around them; size, uid and gid refuse anything after', (t) => {
  const into = apply(concat([paxRecord('size', ' 12 '), paxRecord('uid', '+5'), paxRecord('gid', '0007')]));
  t.deepEqual([into.size, into.uid, into.gid], [12, 5, 7]);
  t.throws(() => apply(paxRecord('uid', '5 6')), { instanceOf: LayerFormatError });
});

test('mtime: whole seconds; text after the number is ignored unless it is a fraction', (t) => {
  t.is(apply(paxRecord('mtime', '1700000000.999999999')).mtime, 1700000000);
  t.is(apply(paxRecord('mtime', '-1.5')).mtime, -1);
  t.is(apply(paxRecord('mtime', '42abc')).mtime, 42);
  t.is(apply(paxRecord('mtime', '42 . 7')).mtime, 42);
});

test('path loses trailing slashes (all of them, leaving an empty path); linkpath keeps them', (t) => {
  const into = apply(concat([paxRecord('path', 'dir//'), paxRecord('linkpath', 'target/')]));
  t.deepEqual([into.path, into.linkPath], ['dir', 'target/']);
  t.is(apply(paxRecord('path', '//')).path, '');
});

test('later records win; unknown keys and keys that only start like known ones are ignored', (t) => {
  const into = apply(concat([paxRecord('path', 'a'), paxRecord('pathname', 'x'), paxRecord('path', 'b'), paxRecord('GNU.sparse.size', '9')]));
  t.deepEqual([into.path, into.size], ['b', undefined]);
});

test('the 1.8.10 base64 reading, on vectors checked with mkfs.erofs 1.8.10', (t) => {
  t.deepEqual(ascii(decodeBase64AsErofs(bytes('AQID'))), [0x00, 0x84, 0x0c]);
  t.deepEqual(ascii(decodeBase64AsErofs(bytes('AAAA'))), [0, 0, 0]);
  t.deepEqual(ascii(decodeBase64AsErofs(bytes('QQ'))), [0x10, 0x04]);
  t.deepEqual(ascii(decodeBase64AsErofs(bytes(''))), []);
  t.is(decodeBase64AsErofs(bytes('3q2+7w==')), undefined);
});

test('the 1.8.10 base64 reading: padding, leftover bits and bad characters', (t) => {
  t.deepEqual(ascii(decodeBase64AsErofs(bytes('AA=='))), [0]); // padded, leftover bits zero
  t.is(decodeBase64AsErofs(bytes('AE==')), undefined); // padded, leftover bits not zero
  t.deepEqual(ascii(decodeBase64AsErofs(bytes('AE'))), [0, 1]); // not padded: the leftover bits become a byte
  t.is(decodeBase64AsErofs(bytes('A=AA')), undefined);
  t.is(decodeBase64AsErofs(bytes('AA-_')), undefined);
  t.is(decodeBase64AsErofs(Uint8Array.of(0x41, 0)), undefined);
});

test('the 1.8.10 base64 reading differs from standard base64 for most values but keeps the length of 3n-byte values', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 30 }).filter((v) => v.length % 3 === 0), (value) => {
    const decoded = decodeBase64AsErofs(bytes(Buffer.from(value).toString('base64')));
    return decoded !== undefined && decoded.length === value.length;
  }));
  t.notDeepEqual(ascii(decodeBase64AsErofs(bytes(Buffer.from([1, 2, 3]).toString('base64')))), [1, 2, 3]);
});

test('URL decoding of LIBARCHIVE names', (t) => {
  const decode = (text: string): string => Buffer.from(urlDecode(bytes(text))).toString('latin1');
  t.is(decode('user.a%20b'), 'user.a b');
  t.is(decode('%41%6a%6A'), 'Ajj');
  t.is(decode('100%'), '100%');
  t.is(decode('%4'), '%4');
  t.is(decode('%zz%2'), '%zz%2');
  t.is(decode('%ff'), '\xff');
});

test('delivered xattrs: own first, then global ones the member did not set, empty names dropped', (t) => {
  const value = (text: string): Uint8Array => bytes(text);
  const own = new Map([['b', value('1')], ['', value('x')], ['a', value('2')]]);
  const global = new Map([['a', value('g')], ['c', value('3')], ['', value('y')]]);
  t.deepEqual(deliveredXattrs(own, global).map((x) => [x.name, Buffer.from(x.value).toString()]), [['b', '1'], ['a', '2'], ['c', '3']]);
});

test('any xattr name without NUL or = and any value survive a record', (t) => {
  const name = fc.uint8Array({ minLength: 1, maxLength: 40 }).filter((n) => !n.includes(0) && !n.includes(0x3d));
  fc.assert(fc.property(name, fc.uint8Array({ maxLength: 300 }), (rawName, value) => {
    const into = apply(paxRecord(concat([bytes('SCHILY.xattr.'), rawName]), value));
    const got = into.xattrs.get(Buffer.from(rawName).toString('latin1'));
    return got !== undefined && Buffer.from(got).equals(Buffer.from(value));
  }));
  t.pass();
});
