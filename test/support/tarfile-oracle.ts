/**
 * An independent reading of a tar file: Python 3's `tarfile` module, run as a
 * child process (argument array, no shell), printing JSON. Byte strings come
 * back as hex so that non-UTF-8 names and binary xattr values compare exactly.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

export interface OracleMember {
  /** Hex of the member name bytes (Python strips trailing slashes of directories). */
  name: string;
  /** The typeflag character. */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds (PAX fractions truncated). */
  mtime: number;
  /** Hex of the link target bytes. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records as [hex name, hex value], in record order. */
  xattrs: [string, string][];
  /** SHA-256 of the contents of regular files. */
  sha256: string | null;
}

const SCRIPT = String.raw`
import hashlib, json, sys, tarfile
def hexb(text):
    return text.encode('utf-8', 'surrogateescape').hex()
members = []
with tarfile.open(sys.argv[1], 'r:', encoding='utf-8', errors='surrogateescape') as archive:
    for m in archive:
        data = archive.extractfile(m).read() if m.isreg() else None
        members.append(dict(
            name=hexb(m.name), type=m.type.decode('latin-1'), mode=m.mode, uid=m.uid, gid=m.gid, size=m.size,
            mtime=int(m.mtime), linkname=hexb(m.linkname), devmajor=m.devmajor, devminor=m.devminor,
            xattrs=[[hexb(k[len('SCHILY.xattr.'):]), hexb(v)] for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')],
            sha256=hashlib.sha256(data).hexdigest() if data is not None else None))
json.dump(members, sys.stdout)
`;

export async function readWithPythonTarfile(path: string): Promise<OracleMember[]> {
  const { stdout } = await promisify(execFile)('python3', ['-c', SCRIPT, path], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as OracleMember[];
}

const TYPEFLAG_OF: Record<string, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6',
};

/** What our reader delivered for one member, in the terms of OracleMember. */
export interface ReadMember {
  entry: {
    path: string; type: string; mode: number; uid: number; gid: number; mtime: number; size: number;
    linkTarget: string | undefined; devMajor: number; devMinor: number; xattrs: { name: string; value: Uint8Array }[];
  };
  data: Uint8Array;
}

/**
 * Field-by-field differences between our members and the oracle's (empty when
 * they agree). Trailing slashes are ignored in names (our reader keeps them in
 * GNU long names, as erofs-utils does; Python strips them from directories).
 */
export function differencesFromOracle(ours: ReadMember[], oracle: OracleMember[]): string[] {
  const differences: string[] = [];
  if (ours.length !== oracle.length) differences.push(`${ours.length} members, the oracle has ${oracle.length}`);
  const hex = (text: string): string => Buffer.from(text, 'latin1').toString('hex');
  const stripSlashes = (hexName: string): string => hexName.replace(/^((?:..)*?)(?:2f)+$/, '$1');
  for (let i = 0; i < Math.min(ours.length, oracle.length); i++) {
    const { entry, data } = ours[i]!;
    const want = oracle[i]!;
    const label = `member ${i} (${Buffer.from(want.name, 'hex').toString('utf8')})`;
    const compare = (what: string, got: unknown, expected: unknown): void => {
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        differences.push(`${label}: ${what} ${JSON.stringify(got)}, oracle ${JSON.stringify(expected)}`);
      }
    };
    compare('name', stripSlashes(hex(entry.path)), stripSlashes(want.name === '' ? hex('.') : want.name));
    compare('type', TYPEFLAG_OF[entry.type], want.type === '7' ? '0' : want.type);
    compare('mode', entry.mode, want.mode & 0o7777);
    compare('uid', entry.uid, want.uid);
    compare('gid', entry.gid, want.gid);
    compare('mtime', entry.mtime, want.mtime);
    if (entry.type === 'file') {
      compare('size', entry.size, want.size);
      compare('sha256', createHash('sha256').update(data).digest('hex'), want.sha256);
    }
    if (entry.type === 'hardlink' || entry.type === 'symlink') compare('link target', hex(entry.linkTarget ?? ''), want.linkname);
    if (entry.type === 'char' || entry.type === 'block') {
      compare('device', [entry.devMajor, entry.devMinor], [want.devmajor, want.devminor]);
    }
    compare('xattrs', entry.xattrs.map((x) => [hex(x.name), Buffer.from(x.value).toString('hex')]), want.xattrs);
  }
  return differences;
}
