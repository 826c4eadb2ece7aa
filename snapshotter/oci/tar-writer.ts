/**
 * Writes tar members in POSIX pax format, the format Go's archive/tar writes
 * when asked for PAX (as go-containerregistry's image flattening does): a
 * ustar header, preceded by an `x` extended header when a value does not fit
 * ustar or xattrs are present. Extended records are sorted by key, as Go
 * sorts them, because mkfs.erofs stores xattrs in the order it reads them.
 *
 * Names and values are byte strings (see layer/tar/entry.ts).
 */
import type { TarEntry, TarEntryType } from '../layer/tar/entry.js';
import { BLOCK_SIZE, field } from '../layer/tar/header.js';

export type TarMember = Pick<TarEntry, 'path' | 'type' | 'mode' | 'uid' | 'gid' | 'mtime' | 'size' | 'linkTarget' | 'devMajor' | 'devMinor' | 'xattrs'>;

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6',
};

/** Two zero blocks: the end-of-archive marker. */
export const TAR_END: Uint8Array = new Uint8Array(2 * BLOCK_SIZE);

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** The header block(s) of `member`; its `size` data bytes and tarPadding(size) must follow. */
export function tarHeader(member: TarMember): Buffer {
  const records = new Map<string, Buffer>();
  const setRecord = (key: string, value: string | Uint8Array) =>
    records.set(key, typeof value === 'string' ? Buffer.from(value, 'latin1') : Buffer.from(value));

  if (member.path.length > field.name[1]) setRecord('path', member.path);
  const link = member.linkTarget ?? '';
  if (link.length > field.linkname[1]) setRecord('linkpath', link);
  const numeric = (key: string, value: number, max: number) => {
    if (Number.isInteger(value) && value >= 0 && value <= max) return value;
    setRecord(key, String(value));
    return 0;
  };
  const uid = numeric('uid', member.uid, MAX_OCTAL_7);
  const gid = numeric('gid', member.gid, MAX_OCTAL_7);
  const size = numeric('size', member.size, MAX_OCTAL_11);
  const mtime = numeric('mtime', member.mtime, MAX_OCTAL_11);
  for (const { name, value } of member.xattrs) setRecord(`SCHILY.xattr.${name}`, value);

  const block = ustarBlock({
    name: member.path,
    mode: member.mode,
    uid,
    gid,
    size,
    mtime,
    typeflag: TYPEFLAG[member.type],
    linkname: link,
    devMajor: member.devMajor,
    devMinor: member.devMinor,
  });
  if (records.size === 0) return block;
  const body = paxRecords(records);
  const paxHeader = ustarBlock({
    name: '././@PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: 'x', linkname: '', devMajor: 0, devMinor: 0,
  });
  return Buffer.concat([paxHeader, body, tarPadding(body.length), block]);
}

/** Zero bytes up to the next 512-byte boundary after `size` data bytes. */
export function tarPadding(size: number): Uint8Array {
  return new Uint8Array((BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE);
}

/** `<length> <key>=<value>\n`, where length counts the whole record including its own digits. */
function paxRecords(records: Map<string, Buffer>): Buffer {
  const keys = [...records.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  return Buffer.concat(keys.map((key) => {
    const payload = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), records.get(key)!, Buffer.from('\n')]);
    let length = payload.length + 1;
    while (String(length).length + payload.length !== length) length = String(length).length + payload.length;
    return Buffer.concat([Buffer.from(String(length)), payload]);
  }));
}

interface UstarFields {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devMajor: number;
  devMinor: number;
}

function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const put = ([offset, length]: readonly [number, number], text: string) => {
    block.write(text.slice(0, length), offset, length, 'latin1');
  };
  const octal = (where: readonly [number, number], value: number) => put(where, `${value.toString(8).padStart(where[1] - 1, '0')}\0`);
  put(field.name, f.name);
  octal(field.mode, f.mode & 0o7777);
  octal(field.uid, f.uid);
  octal(field.gid, f.gid);
  octal(field.size, f.size);
  octal(field.mtime, f.mtime);
  put(field.typeflag, f.typeflag);
  put(field.linkname, f.linkname);
  put(field.magic, 'ustar\0');
  put([263, 2], '00'); // version
  octal(field.devmajor, f.devMajor);
  octal(field.devminor, f.devMinor);
  // The checksum is computed with its own field as eight spaces.
  put(field.checksum, '        ');
  let sum = 0;
  for (const byte of block) sum += byte;
  put(field.checksum, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}
