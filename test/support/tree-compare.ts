/**
 * Kernel truth for layer images. Two halves:
 *
 * 1. `expectedTree`: what a layer tar must look like once its image is
 *    mounted, computed from the tar's entries alone (no code of the EROFS
 *    writer), with the layer semantics of mkfs.erofs 1.8.10 in
 *    `--tar=f --aufs` mode as testdata/erofs/LAYOUT.md describes them: the
 *    root is 0777 root:root; implicit directories are 0755 plus the parent's
 *    group/other write bits and take the parent's owner; a directory listed
 *    again keeps its children and takes the new attributes; any other repeated
 *    path replaces the old entry and its subtree (last entry wins); `.wh.X` is
 *    a character device 0:0 named X with mode 0000; `.wh..wh..opq` appends
 *    `trusted.overlay.opaque=y` to its directory; a directory a whiteout was
 *    ever written into gets `trusted.overlay.origin=""` after its other xattrs;
 *    hard links share an inode; every time is the build time (mkfs -T).
 *    Inputs the project refuses raise `RefusedLayer`, naming the same rule.
 *
 * 2. `compareWithMount`: the expected tree against what the kernel shows under
 *    a mount point (lstat, readlink, file contents, xattrs through the
 *    addon), entry by entry; every difference is returned, one line each.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { getXattr, listXattrs } from '../../snapshotter/native/xattr.js';
import { displayName, type ByteString, type TarEntry, type TarEntryType } from '../../snapshotter/layer/tar/entry.js';
import { TarParser } from '../../snapshotter/layer/tar/reader.js';
import { DELIVERY_KIT_BUILD_TIME } from '../../snapshotter/layer/erofs/writer.js';

export type NodeType = Exclude<TarEntryType, 'hardlink'>;

/** A tar entry and the SHA-256 (hex) of its data. */
export interface LayerEntry extends TarEntry {
  sha256: string;
}

export interface ExpectedXattr {
  name: ByteString;
  value: Uint8Array;
}

export interface ExpectedNode {
  /** Relative to the layer root; '' is the root. */
  path: ByteString;
  type: NodeType;
  whiteout: boolean;
  /** Permission bits with setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** st_size; undefined for directories (their size is the dirent layout's business). */
  size: number | undefined;
  sha256: string | undefined;
  target: ByteString | undefined;
  devMajor: number;
  devMinor: number;
  /** In on-disk order, as listxattr shows them. */
  xattrs: ExpectedXattr[];
  /** Equal for the paths of one inode (hard links), different otherwise. */
  inode: number;
  nlink: number;
}

export interface ExpectedTree {
  buildTime: number;
  /** Parents before children. */
  nodes: Map<ByteString, ExpectedNode>;
}

/** An input the pipeline must refuse; `entry` and `offset` say which member. */
export class RefusedLayer extends Error {
  constructor(readonly reason: string, readonly entry: ByteString, readonly offset: number) {
    super(`${reason} (entry ${JSON.stringify(displayName(entry))}, offset ${offset})`);
    this.name = 'RefusedLayer';
  }
}

const NAME_MAX = 255;
const OPAQUE_MARKER = '.wh..wh..opq';
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE: ExpectedXattr = { name: 'trusted.overlay.opaque', value: Uint8Array.of(0x79) };
const ORIGIN: ExpectedXattr = { name: 'trusted.overlay.origin', value: new Uint8Array(0) };
/** Name prefixes EROFS stores as an index; any other name would be stored whole (index 0). */
const INDEXED_PREFIXES = ['user.', 'system.posix_acl_access', 'system.posix_acl_default', 'trusted.', 'security.'];
/** The namespaces compared through the kernel: others are hidden (index 0) or parsed (ACLs) by it. */
const COMPARED_PREFIXES = ['user.', 'trusted.', 'security.'];

interface ModelInode {
  id: number;
  type: NodeType;
  whiteout: boolean;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256: string | undefined;
  target: ByteString | undefined;
  devMajor: number;
  devMinor: number;
  xattrs: ExpectedXattr[];
  /** The directory mkfs records as the inode's parent: where it was created. */
  createdIn: ModelInode;
  children: Map<ByteString, ModelDentry> | undefined;
  /** mkfs's parse-time link count of a directory: 2 at creation, minus one per removed subdirectory. */
  parseLinks: number;
  whiteoutsSeen: boolean;
}

interface ModelDentry {
  inode: ModelInode | null;
  /** This name held a directory that a non-directory replaced: it may not become a directory again. */
  lostDirectory: boolean;
}

interface Resolved {
  /** null: the path names the root. */
  dentry: ModelDentry | null;
  /** The directory that holds `dentry`. */
  holder: ModelInode;
  whiteout: boolean;
  /** Set for an opaque marker: the directory it marks (null: the root, which is refused). */
  opaqueDir: ModelInode | null | undefined;
}

/** Applies entries in archive order; `tree()` gives the expected view. */
export class LayerModel {
  private nextId = 1;
  private readonly root: ModelInode;

  constructor(private readonly buildTime = DELIVERY_KIT_BUILD_TIME) {
    this.root = this.newInode(undefined, 'directory');
    this.root.mode = 0o777;
  }

  add(entry: LayerEntry): void {
    const refuse = (reason: string): never => {
      throw new RefusedLayer(reason, entry.path, entry.offset);
    };
    checkPath(entry.path, 'path', refuse);
    if (entry.type === 'hardlink') {
      if (entry.linkTarget === undefined) refuse('hard link without a target');
      checkPath(entry.linkTarget!, 'hard link target', refuse);
    }
    const last = entry.path.slice(entry.path.lastIndexOf('/') + 1);
    if (last.startsWith(WHITEOUT_PREFIX) && last !== OPAQUE_MARKER && ['', '.', '..'].includes(last.slice(WHITEOUT_PREFIX.length))) {
      refuse(`whiteout ${JSON.stringify(last)} names no file`);
    }
    for (const x of entry.xattrs) {
      const prefix = INDEXED_PREFIXES.find((p) => x.name.startsWith(p)) ?? '';
      if (x.name.length - prefix.length > 255) refuse('xattr name is longer than 255 bytes after its prefix');
      if (x.value.length > 0xffff) refuse('xattr value is longer than 65535 bytes');
    }

    const { dentry: d, holder, whiteout, opaqueDir } = this.resolve(entry.path, refuse, () => refuse('path refers to a removed entry'));
    if (opaqueDir !== undefined) {
      if (opaqueDir === null) refuse('opaque marker at the layer root');
      if (entry.size > 0) refuse('opaque marker with data');
      opaqueDir!.xattrs.push(OPAQUE);
      return;
    }
    if (entry.type === 'hardlink') return this.link(d, entry, refuse);

    let inode: ModelInode;
    if (d === null || (d.inode?.type === 'directory' && entry.type === 'directory')) {
      if (d === null && entry.type !== 'directory') refuse('the layer root is not a directory');
      if (whiteout) throw new Error(`the model does not cover whiteout entries of type directory (${displayName(entry.path)})`);
      inode = d === null ? this.root : d.inode!;
      this.relist(inode, refuse);
    } else {
      const old = d.inode;
      if (old !== null) {
        if (old.createdIn !== holder && (entry.type === 'directory' || whiteout)) refuse('a hard link is replaced by a directory or whiteout');
        if (old.type === 'directory') d.lostDirectory = true;
        remove(old);
      }
      if (entry.type === 'directory' && d.lostDirectory && !whiteout) refuse('a directory that was replaced by a non-directory becomes a directory again');
      inode = this.newInode(old?.createdIn ?? holder, whiteout ? 'char' : entry.type);
      d.inode = inode;
      if (whiteout) {
        inode.whiteout = true;
        inode.createdIn.whiteoutsSeen = true;
      } else {
        inode.mode = entry.mode;
        if (entry.type === 'char' || entry.type === 'block') [inode.devMajor, inode.devMinor] = deviceAsStored(entry.devMajor, entry.devMinor);
      }
    }
    if (inode.type === 'directory') inode.mode = entry.mode;
    inode.uid = entry.uid;
    inode.gid = entry.gid;
    inode.size = entry.size;
    if (inode.type === 'symlink') {
      inode.target = entry.linkTarget ?? '';
      inode.size = inode.target.length;
    }
    if (inode.type === 'file') inode.sha256 = entry.sha256;
    inode.xattrs.push(...entry.xattrs);
  }

  /** The view the kernel must show. */
  tree(): ExpectedTree {
    const nodes = new Map<ByteString, ExpectedNode>();
    const links = new Map<number, ExpectedNode[]>();
    const visit = (path: ByteString, inode: ModelInode): void => {
      const node: ExpectedNode = {
        path,
        type: inode.type,
        whiteout: inode.whiteout,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        size: inode.type === 'directory' ? undefined : inode.size,
        sha256: inode.sha256,
        target: inode.target,
        devMajor: inode.devMajor,
        devMinor: inode.devMinor,
        // origin is added when mkfs dumps the directory, after everything parsed.
        xattrs: inode.whiteoutsSeen ? [...inode.xattrs, ORIGIN] : [...inode.xattrs],
        inode: inode.id,
        nlink: 0,
      };
      nodes.set(path, node);
      if (inode.children === undefined) {
        const group = links.get(inode.id) ?? [];
        group.push(node);
        links.set(inode.id, group);
        return;
      }
      let subdirectories = 0;
      for (const [name, child] of inode.children) {
        if (child.inode === null) continue;
        if (child.inode.type === 'directory') subdirectories++;
        visit(path === '' ? name : `${path}/${name}`, child.inode);
      }
      node.nlink = 2 + subdirectories;
    };
    visit('', this.root);
    for (const group of links.values()) for (const node of group) node.nlink = group.length;
    return { buildTime: this.buildTime, nodes };
  }

  private newInode(createdIn: ModelInode | undefined, type: NodeType): ModelInode {
    const inode: ModelInode = {
      id: this.nextId++, type, whiteout: false, mode: 0, uid: 0, gid: 0, size: 0, sha256: undefined, target: undefined,
      devMajor: 0, devMinor: 0, xattrs: [], createdIn: createdIn!, children: undefined, parseLinks: 0, whiteoutsSeen: false,
    };
    inode.createdIn ??= inode;
    if (type === 'directory') {
      inode.children = new Map();
      inode.parseLinks = 2;
    }
    return inode;
  }

  /**
   * A directory entry for an existing directory. mkfs 1.8.10 would give a
   * directory whose parse-time link count ran down to exactly 0 (two of its
   * subdirectories were replaced) a second '.'/'..' pair; the writer refuses that.
   */
  private relist(inode: ModelInode, refuse: (reason: string) => never): void {
    if (inode.parseLinks === 0) refuse('a directory is listed again after its subdirectories were replaced');
  }

  private link(d: ModelDentry | null, entry: LayerEntry, refuse: (reason: string) => never): void {
    if (d === null) return refuse('a hard link names the layer root');
    if (d.inode !== null) {
      if (d.inode.type === 'directory') d.lostDirectory = true;
      remove(d.inode);
    }
    // Dropped before the target is looked up, as mkfs does: a link to itself or into its own old subtree is missing.
    d.inode = null;
    const missing = (): never => refuse('hard link target does not exist');
    const target = this.resolve(entry.linkTarget!, refuse, missing);
    if (target.dentry === null || target.opaqueDir !== undefined) return refuse('hard link to a directory');
    const inode = target.dentry.inode;
    if (inode === null) return missing();
    if (inode.type === 'directory') refuse('hard link to a directory');
    d.inode = inode;
  }

  /**
   * Walks `path` from the root: missing intermediate directories are created
   * (implicit directories), a missing last component gets a new empty dentry.
   * Whiteout names count only as the last component; a path that ends in '.'
   * or '/' has none (all its names are walked as directories).
   */
  private resolve(path: ByteString, refuse: (reason: string) => never, missing: () => never): Resolved {
    const raw = path.split('/');
    const lastRaw = raw[raw.length - 1]!;
    const names = raw.filter((name) => name !== '' && name !== '.');
    const leafAtEnd = lastRaw !== '' && lastRaw !== '.';
    let dir = this.root;
    let holder = this.root;
    let dentry: ModelDentry | null = null;
    let whiteout = false;
    for (let i = 0; i < names.length; i++) {
      let name = names[i]!;
      const leaf = leafAtEnd && i === names.length - 1;
      if (leaf && name === OPAQUE_MARKER) return { dentry, holder, whiteout, opaqueDir: dentry === null ? null : dir };
      if (leaf && name.startsWith(WHITEOUT_PREFIX)) {
        name = name.slice(WHITEOUT_PREFIX.length);
        whiteout = true;
      }
      holder = dir;
      const found = dir.children!.get(name);
      if (found !== undefined) {
        if (found.inode === null) missing();
        if (!leaf && found.inode!.type !== 'directory') refuse('path goes through a non-directory');
        dentry = found;
      } else if (!leaf) {
        dentry = { inode: this.implicitDirectory(dir), lostDirectory: false };
        dir.children!.set(name, dentry);
      } else {
        dentry = { inode: null, lostDirectory: false };
        dir.children!.set(name, dentry);
      }
      if (dentry.inode !== null) dir = dentry.inode;
    }
    return { dentry, holder, whiteout, opaqueDir: undefined };
  }

  private implicitDirectory(parent: ModelInode): ModelInode {
    const inode = this.newInode(parent, 'directory');
    inode.mode = 0o755 | (parent.mode & 0o022);
    inode.uid = parent.uid;
    inode.gid = parent.gid;
    return inode;
  }
}

/** tarerofs_remove_inode: the inode loses this link; a directory takes its subtree along. */
function remove(inode: ModelInode): void {
  if (inode.children === undefined) return;
  for (const child of inode.children.values()) {
    if (child.inode !== null) remove(child.inode);
    child.inode = null;
  }
  inode.createdIn.parseLinks--;
}

/**
 * The device number the kernel reads back. mkfs 1.8.10 (lib/tar.c) builds
 * st_rdev from the tar's major/minor in a signed int, so a minor with bit 19
 * set sign-extends into the upper bits, and the kernel decodes minor bits
 * 8..19 as all ones: 0:524288 comes back as 0:1048320. Our writer keeps the
 * same bytes (the contract), so the expected tree says so too.
 */
function deviceAsStored(major: number, minor: number): [number, number] {
  return minor & 0x80000 ? [major, 0xfff00 | (minor & 0xff)] : [major, minor];
}

function checkPath(path: ByteString, what: string, refuse: (reason: string) => never): void {
  if (path.startsWith('/')) refuse(`${what} is absolute`);
  if (path.includes('\0')) refuse(`${what} contains a NUL byte`);
  for (const name of path.split('/')) {
    if (name === '..') refuse(`${what} has a ".." component`);
    if (name.length > NAME_MAX) refuse(`${what} has a component of ${name.length} bytes`);
  }
}

/** The entries of a tar as the project's reader delivers them, each with the SHA-256 of its data. */
export function layerEntries(tar: Uint8Array): LayerEntry[] {
  const entries: LayerEntry[] = [];
  let current: { entry: TarEntry; hash: ReturnType<typeof createHash> } | undefined;
  const flush = (): void => {
    if (current) entries.push({ ...current.entry, sha256: current.hash.digest('hex') });
    current = undefined;
  };
  const parser = new TarParser({
    entry: (entry) => {
      flush();
      current = { entry, hash: createHash('sha256') };
    },
    data: (chunk) => current!.hash.update(chunk),
    end: flush,
  });
  parser.write(tar);
  parser.end();
  return entries;
}

/** The expected view of a layer tar; throws RefusedLayer for input the pipeline must refuse. */
export function expectedTree(tar: Uint8Array | readonly LayerEntry[], buildTime = DELIVERY_KIT_BUILD_TIME): ExpectedTree {
  const model = new LayerModel(buildTime);
  for (const entry of tar instanceof Uint8Array ? layerEntries(tar) : tar) model.add(entry);
  return model.tree();
}

// ------------------------------------------------------------ the kernel's view

const S_IFMT = 0o170000n;
const TYPE_BITS: Record<NodeType, bigint> = {
  file: 0o100000n, directory: 0o040000n, symlink: 0o120000n, char: 0o020000n, block: 0o060000n, fifo: 0o010000n,
};

/**
 * Compares the tree the kernel shows under `mountDir` with `expected`. Returns
 * every difference, one line each ('<path>: <what>'); none = the same tree.
 */
export async function compareWithMount(expected: ExpectedTree, mountDir: string): Promise<string[]> {
  const differences: string[] = [];
  const actual = listMount(mountDir);
  const report = (path: ByteString, what: string): void => {
    differences.push(`${path === '' ? '/' : displayName(path)}: ${what}`);
  };
  for (const path of actual.keys()) if (!expected.nodes.has(path)) report(path, `unexpected entry (${typeName(lstatSync(actual.get(path)!, { bigint: true }))})`);

  const timeNs = BigInt(expected.buildTime) * 1_000_000_000n;
  const inodeOwner = new Map<bigint, ExpectedNode>();
  const inodeOf = new Map<number, { ino: bigint; path: ByteString }>();
  for (const node of expected.nodes.values()) {
    const full = actual.get(node.path);
    if (full === undefined) {
      report(node.path, `missing (expected ${describeNode(node)})`);
      continue;
    }
    const st = lstatSync(full, { bigint: true });
    const is = (what: string, want: unknown, got: unknown): void => {
      if (want !== got) report(node.path, `${what}: expected ${String(want)}, kernel shows ${String(got)}`);
    };
    if ((st.mode & S_IFMT) !== TYPE_BITS[node.type]) {
      report(node.path, `type: expected ${describeNode(node)}, kernel shows ${typeName(st)}`);
      continue;
    }
    is('mode', octal(node.mode), octal(Number(st.mode & 0o7777n)));
    is('uid', BigInt(node.uid), st.uid);
    is('gid', BigInt(node.gid), st.gid);
    for (const [what, value] of [['mtime', st.mtimeNs], ['ctime', st.ctimeNs], ['atime', st.atimeNs]] as const) {
      is(`${what} (ns)`, timeNs, value);
    }
    if (node.size !== undefined) is('size', BigInt(node.size), st.size);
    is('nlink', BigInt(node.nlink), st.nlink);

    // Hard links: the paths of one expected inode share one kernel inode, and no other path has it.
    const seen = inodeOf.get(node.inode);
    if (seen === undefined) inodeOf.set(node.inode, { ino: st.ino, path: node.path });
    else if (seen.ino !== st.ino) report(node.path, `should be a hard link of ${displayName(seen.path)}, but has inode ${st.ino} (that one ${seen.ino})`);
    const owner = inodeOwner.get(st.ino);
    if (owner === undefined) inodeOwner.set(st.ino, node);
    else if (owner.inode !== node.inode) report(node.path, `shares inode ${st.ino} with ${owner.path === '' ? '/' : displayName(owner.path)}, but should not`);

    switch (node.type) {
      case 'file':
        if (st.size === BigInt(node.size ?? -1)) is('content sha256', node.sha256, await sha256Of(full));
        break;
      case 'symlink':
        is('symlink target', JSON.stringify(displayName(node.target ?? '')), JSON.stringify(displayName(readlinkSync(full, { encoding: 'buffer' }).toString('latin1'))));
        break;
      case 'char':
      case 'block': {
        const { major, minor } = decodeDevice(st.rdev);
        is('device', `${node.devMajor}:${node.devMinor}`, `${major}:${minor}`);
        break;
      }
    }
    await compareXattrs(node, full, report);
  }
  return differences;
}

/** A readable block for test logs: the count, then one difference per line. */
export function formatDifferences(differences: readonly string[]): string {
  if (differences.length === 0) return 'the kernel shows the expected tree';
  return `${differences.length} difference(s) between the layer and the kernel's view:\n${differences.map((d) => `  ${d}`).join('\n')}`;
}

async function compareXattrs(node: ExpectedNode, path: Buffer, report: (path: ByteString, what: string) => void): Promise<void> {
  const compared = (name: ByteString): boolean => COMPARED_PREFIXES.some((prefix) => name.startsWith(prefix));
  const want = node.xattrs.filter((x) => compared(x.name));
  const got = (await listXattrs(path)).filter(compared);
  const names = (list: readonly ByteString[]): string => `[${list.map((n) => displayName(n)).join(', ')}]`;
  if (names(want.map((x) => x.name)) !== names(got)) {
    report(node.path, `xattr names: expected ${names(want.map((x) => x.name))}, kernel lists ${names(got)}`);
  }
  const checked = new Set<ByteString>();
  for (const x of want) {
    // getxattr returns the first attribute of a name.
    if (checked.has(x.name) || !got.includes(x.name)) continue;
    checked.add(x.name);
    // The VFS answers ENODATA for user.* values on anything but files and directories (xattr_permission).
    const userOnSpecial = x.name.startsWith('user.') && node.type !== 'file' && node.type !== 'directory';
    let value: Buffer | undefined;
    try {
      value = await getXattr(path, x.name);
    } catch (err) {
      const errno = (err as { errno?: unknown }).errno;
      // security.capability is parsed by the kernel: a value that is no valid vfs_cap_data gives EINVAL.
      if (errno !== 'ENODATA') {
        report(node.path, `xattr ${displayName(x.name)}: getxattr fails with ${String(errno)} (stored ${showBytes(x.value)})`);
        continue;
      }
    }
    if (userOnSpecial) {
      if (value !== undefined) report(node.path, `xattr ${displayName(x.name)}: the kernel should hide user.* values of a ${node.type}, but returns ${value.length} bytes`);
    } else if (value === undefined) {
      report(node.path, `xattr ${displayName(x.name)}: listed, but getxattr says ENODATA`);
    } else if (!value.equals(x.value)) {
      report(node.path, `xattr ${displayName(x.name)}: expected ${showBytes(x.value)}, kernel returns ${showBytes(value)}`);
    }
  }
}

/** Every path under `dir` (byte strings relative to it, '' for itself) → its full path as bytes. */
function listMount(dir: string): Map<ByteString, Buffer> {
  const found = new Map<ByteString, Buffer>();
  const walk = (relative: ByteString, full: Buffer): void => {
    found.set(relative, full);
    for (const entry of readdirSync(full, { withFileTypes: true, encoding: 'buffer' })) {
      const name = entry.name.toString('latin1');
      const child = Buffer.concat([full, Buffer.from('/'), entry.name]);
      if (entry.isDirectory()) walk(relative === '' ? name : `${relative}/${name}`, child);
      else found.set(relative === '' ? name : `${relative}/${name}`, child);
    }
  };
  walk('', Buffer.from(dir));
  return found;
}

async function sha256Of(path: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** glibc's major()/minor() of a dev_t. */
function decodeDevice(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

function typeName(st: BigIntStats): string {
  const bits = st.mode & S_IFMT;
  const type = (Object.keys(TYPE_BITS) as NodeType[]).find((t) => TYPE_BITS[t] === bits);
  return type ?? `mode 0${bits.toString(8)}`;
}

function describeNode(node: ExpectedNode): string {
  return node.whiteout ? 'whiteout (char 0:0)' : node.type;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(4, '0')}`;
}

function showBytes(value: Uint8Array): string {
  const text = Buffer.from(value).toString('utf8');
  return /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `hex ${Buffer.from(value).toString('hex')}`;
}
