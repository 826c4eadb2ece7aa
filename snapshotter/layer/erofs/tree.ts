/**
 * The in-memory tree of a layer, built from tar entries in archive order.
 *
 * It mirrors the bookkeeping of mkfs.erofs 1.8.10 in tar mode
 * (tarerofs_parse_tar in lib/tar.c, erofs_rebuild_get_dentry and
 * erofs_rebuild_mkdir in lib/rebuild.c), including its link counters and
 * parent pointers, because the image bytes depend on them: a directory's
 * '.'/'..' pairs, the compact/extended choice and nlink all come from here.
 * docs/erofs-format.md lists the rules and the inputs we refuse on purpose.
 */
import { LayerFormatError } from '../../core/errors.js';
import { displayName, type ByteString, type TarEntry } from '../tar/entry.js';
import { classifyName } from '../tar/whiteout.js';
import {
  FileType,
  MAX_DEVICE_MAJOR,
  MAX_DEVICE_MINOR,
  NAME_LEN,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  encodeDevice,
  fileTypeOfMode,
  isDirectoryMode,
} from './format.js';
import { MAX_XATTR_BODY, OVERLAY_OPAQUE, xattrBodySize, xattrProblem, type Xattr } from './xattr.js';

/** Largest u32 (uid, gid). */
const MAX_ID = 0xffffffff;
const ID_FIELDS = ['uid', 'gid'] as const;
/** A file may not need more blocks than a 32-bit block address can reach. */
const MAX_FILE_SIZE = 0xffffffff * 4096;

export interface DirectoryContents {
  /** Named entries; '.' and '..' are not in here (see dotdots). */
  readonly children: Map<ByteString, Dentry>;
  /**
   * The '..' target of each '.'/'..' pair. mkfs adds a pair whenever it
   * (re)initialises a directory whose parse-time link count is 0, so a
   * directory can end up with two pairs; the dirents show both.
   */
  readonly dotdots: Inode[];
}

export class Inode {
  mode = 0;
  uid = 0;
  gid = 0;
  /** i_size as parsed: data bytes of files, target length of symlinks. */
  size = 0;
  /** Link count as mkfs keeps it while parsing: u32 arithmetic, may wrap. */
  nlink = 0;
  /** Encoded device number (i_u of device inodes). */
  rdev = 0;
  symlink: ByteString | undefined;
  /** Offset of a regular file's data in the spill, -1 without data. */
  dataOffset = -1;
  /** Shared and never mutated: most inodes have none, and an array each would cost 32 bytes per inode. */
  xattrs: readonly Xattr[] = NO_XATTRS;
  /** Directly contains a whiteout: gets trusted.overlay.origin when dumped. */
  whiteouts = false;
  dir: DirectoryContents | undefined;
  /** i_parent: where mkfs created the inode; the root is its own parent. */
  readonly parent: Inode;

  constructor(parent?: Inode) {
    this.parent = parent ?? this;
  }

  get isDirectory(): boolean {
    return isDirectoryMode(this.mode);
  }
}

export class Dentry {
  /** This name held a directory that a non-directory replaced: it may not become a directory again. */
  lostDirectory = false;

  constructor(
    public type: FileType,
    public inode: Inode | null,
  ) {}
}

const u32 = (n: number): number => n >>> 0;

const NO_XATTRS: readonly Xattr[] = Object.freeze([]);

/**
 * A copy of `name` that stands alone. V8 makes a slice of 13 or more chars a
 * view that keeps the whole string alive; a name kept in the tree would hold
 * its entry's full path for the life of the tree.
 */
function ownName(name: ByteString): ByteString {
  return name.length < 13 ? name : Buffer.from(name, 'latin1').toString('latin1');
}

/** erofs_init_empty_dir: a '.'/'..' pair and nlink 2. */
function initEmptyDir(inode: Inode): void {
  inode.dir ??= { children: new Map(), dotdots: [] };
  inode.dir.dotdots.push(inode.parent);
  inode.nlink = 2;
}

/** tarerofs_remove_inode: drops one link, and for directories the subtree's links and one of the parent's. */
function removeInode(inode: Inode): void {
  inode.nlink = u32(inode.nlink - 1);
  if (!inode.isDirectory) return;
  for (const child of inode.dir?.children.values() ?? []) {
    if (child.inode) removeInode(child.inode);
    child.inode = null;
  }
  inode.parent.nlink = u32(inode.parent.nlink - 1);
}

function modeOfType(type: TarEntry['type']): number {
  switch (type) {
    case 'file':
    case 'hardlink':
      return S_IFREG;
    case 'symlink': return S_IFLNK;
    case 'char': return S_IFCHR;
    case 'block': return S_IFBLK;
    case 'directory': return S_IFDIR;
    case 'fifo': return S_IFIFO;
  }
}

interface Resolved {
  /** null: the path names the root itself. */
  dentry: Dentry | null;
  /** The directory holding `dentry`. */
  holder: Inode;
  whiteout: boolean;
  opaque: boolean;
}

export class LayerTree {
  readonly root: Inode;
  private readonly aufs = true;

  /** erofs_rebuild_make_root: mode 0777, owned by root. */
  constructor() {
    this.root = new Inode();
    this.root.mode = S_IFDIR | 0o777;
    initEmptyDir(this.root);
  }

  /**
   * Applies one tar entry. Returns the inode whose data follows in the
   * stream (regular files with data), or undefined when the data, if any,
   * is not kept.
   */
  add(entry: TarEntry): Inode | undefined {
    const fail = (message: string, hint?: string): never => {
      throw new LayerFormatError(message, { entry: displayName(entry.path), offset: entry.offset }, hint === undefined ? {} : { hint });
    };
    this.check(entry, fail);

    const stMode = modeOfType(entry.type) | entry.mode;
    const { dentry: d, holder, whiteout, opaque } = this.resolve(entry.path, fail);

    let inode: Inode;
    if (d === null) {
      // A '.' entry sets the root's attributes.
      if (!isDirectoryMode(stMode)) fail('the layer root is not a directory', 'only a directory entry may name "." or "./"');
      inode = this.root;
    } else if (opaque) {
      // 1.8.10 does not read past the marker's data and takes the rest of the archive for garbage.
      if (entry.size > 0) fail(`opaque marker with ${entry.size} bytes of data`, 'an opaque marker is an empty file');
      d.inode!.xattrs = [...d.inode!.xattrs, OVERLAY_OPAQUE];
      return undefined;
    } else if (entry.type === 'hardlink') {
      this.link(d, entry, fail);
      return undefined;
    } else if (d.type === FileType.Directory && isDirectoryMode(stMode)) {
      // A directory listed again keeps its inode and children; its attributes are overwritten.
      inode = d.inode!;
      if (whiteout) d.lostDirectory = true;
    } else {
      if (d.type !== FileType.Unknown) {
        const old = d.inode!;
        // 1.8.10 parents the new inode where the old one was created. For a hard link made in another
        // directory that gives a directory the wrong '..', or a whiteout's origin xattr the wrong
        // directory, and it reads freed memory once that directory is gone.
        if (old.parent !== holder && (isDirectoryMode(stMode) || whiteout)) {
          fail('a hard link is replaced by a directory or whiteout', 'mkfs.erofs 1.8.10 mislinks such an entry; write the path once per layer');
        }
        if (d.type === FileType.Directory) d.lostDirectory = true;
        removeInode(old);
        d.inode = old.parent;
      }
      if (isDirectoryMode(stMode) && d.lostDirectory && !whiteout) {
        fail('a directory that was replaced by a non-directory becomes a directory again', 'write each path once per layer');
      }
      inode = new Inode(d.inode!);
      d.inode = inode;
      d.type = fileTypeOfMode(stMode);
    }

    if (whiteout) {
      // A whiteout is a 0:0 character device; a reused inode keeps its permission bits.
      inode.mode = (inode.mode & ~S_IFMT) | S_IFCHR;
      inode.rdev = 0;
      d!.type = FileType.CharDevice;
      inode.parent.whiteouts = true;
    } else {
      inode.mode = stMode;
      if (entry.type === 'char' || entry.type === 'block') inode.rdev = encodeDevice(entry.devMajor, entry.devMinor);
    }
    inode.uid = entry.uid;
    inode.gid = entry.gid;
    inode.size = entry.size;

    let takesData = false;
    if (!inode.isDirectory) {
      if ((inode.mode & S_IFMT) === S_IFLNK) {
        inode.symlink = entry.linkTarget ?? '';
        inode.size = inode.symlink.length;
      } else if (inode.size > 0) {
        // mkfs reads the data of any sized non-directory, but only regular files use it.
        takesData = (inode.mode & S_IFMT) === S_IFREG;
      }
      inode.nlink = u32(inode.nlink + 1);
    } else if (inode.nlink === 0) {
      // 1.8.10 counts a directory's links down as its subdirectories are replaced and, listed
      // again at zero, gives it a second '.' and '..'; fsck.erofs calls that image corrupt.
      if (inode.dir) fail('a directory is listed again after its subdirectories were replaced', 'write each path once per layer');
      initEmptyDir(inode);
    }
    if (entry.xattrs.length > 0) inode.xattrs = [...inode.xattrs, ...entry.xattrs];
    const xattrSize = xattrBodySize(inode.xattrs);
    if (xattrSize > MAX_XATTR_BODY) fail(`${xattrSize} bytes of xattrs on one inode, more than ${MAX_XATTR_BODY}`);
    return takesData ? inode : undefined;
  }

  /** A hard link shares the target's inode (tarerofs_parse_tar, typeflag '1'). */
  private link(d: Dentry, entry: TarEntry, fail: (message: string, hint?: string) => never): void {
    if (d.type !== FileType.Unknown) {
      if (d.type === FileType.Directory) d.lostDirectory = true;
      removeInode(d.inode!);
    }
    d.inode = null;
    const missing = (): never => fail(`hard link target ${JSON.stringify(displayName(entry.linkTarget!))} does not exist`, 'a hard link must name an earlier entry of the same layer');
    const target = this.resolve(entry.linkTarget!, fail, missing).dentry;
    if (target === null) return fail('hard link to a directory', 'directories cannot be hard-linked');
    if (target.type === FileType.Unknown || target.inode === null) return missing();
    const inode = target.inode;
    if (inode.isDirectory) fail('hard link to a directory', 'directories cannot be hard-linked');
    d.inode = inode;
    d.type = target.type;
    inode.nlink = u32(inode.nlink + 1);
  }

  /**
   * erofs_rebuild_get_dentry: walks `path` from the root, creating missing
   * intermediate directories and a typeless dentry for a missing last
   * component. The whiteout rules apply to the last component only.
   */
  private resolve(path: ByteString, fail: (message: string, hint?: string) => never, missing?: () => never): Resolved {
    let pwd = this.root;
    let holder = pwd;
    let d: Dentry | null = null;
    let whiteout = false;
    let opaque = false;
    let i = 0;
    for (;;) {
      while (path.charCodeAt(i) === 0x2f) i++;
      if (i >= path.length) break;
      const slash = path.indexOf('/', i);
      const last = slash < 0;
      let name = last ? path.slice(i) : path.slice(i, slash);
      if (name !== '.') {
        if (this.aufs && last) {
          const kind = classifyName(name);
          if (kind.kind === 'opaque') {
            opaque = true;
            break;
          }
          if (kind.kind === 'whiteout') {
            name = kind.target;
            whiteout = true;
          }
        }
        holder = pwd;
        const found = pwd.dir!.children.get(name);
        if (found) {
          if (found.inode === null) (missing ?? (() => fail('path refers to a removed entry')))();
          if (found.type !== FileType.Directory && !last) {
            fail('path goes through a non-directory', 'a layer may not place entries below a file, symlink or device');
          }
          d = found;
        } else if (!last) {
          d = this.mkdir(pwd, name);
        } else {
          d = new Dentry(FileType.Unknown, pwd);
          pwd.dir!.children.set(ownName(name), d);
        }
        pwd = d.inode!;
      }
      if (last) break;
      i = slash + 1;
    }
    if (opaque && d === null) fail('opaque marker at the layer root', 'an opaque marker must be inside a directory');
    return { dentry: d, holder, whiteout, opaque };
  }

  /** erofs_rebuild_mkdir: an implicit parent, 0755 plus the parent's group/other write bits. */
  private mkdir(parent: Inode, name: ByteString): Dentry {
    const inode = new Inode(parent);
    inode.mode = S_IFDIR | 0o755 | (parent.mode & 0o022);
    inode.uid = parent.uid;
    inode.gid = parent.gid;
    initEmptyDir(inode);
    const d = new Dentry(FileType.Directory, inode);
    parent.dir!.children.set(ownName(name), d);
    return d;
  }

  /** The refusals that do not depend on the tree. */
  private check(entry: TarEntry, fail: (message: string, hint?: string) => never): void {
    checkPath(entry.path, 'path', fail);
    if (entry.type === 'hardlink') {
      if (entry.linkTarget === undefined) fail('hard link without a target');
      checkPath(entry.linkTarget!, 'hard link target', fail);
    }
    if (entry.type === 'symlink' && entry.linkTarget?.includes('\0')) fail('symlink target contains a NUL byte');
    const last = entry.path.slice(entry.path.lastIndexOf('/') + 1);
    const kind = classifyName(last);
    if (kind.kind === 'whiteout' && (kind.target === '' || kind.target === '.' || kind.target === '..')) {
      fail(`whiteout ${JSON.stringify(last)} names no file`);
    }
    for (const what of ID_FIELDS) {
      const value = entry[what];
      if (!Number.isInteger(value) || value < 0 || value > MAX_ID) fail(`${what} ${value} is not a 32-bit id`);
    }
    if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) fail(`mode ${entry.mode} has bits beyond 07777`);
    if (!Number.isSafeInteger(entry.size) || entry.size < 0 || entry.size > MAX_FILE_SIZE) fail(`size ${entry.size} cannot be stored`);
    if (entry.type === 'char' || entry.type === 'block') {
      const { devMajor: major, devMinor: minor } = entry;
      if (!Number.isInteger(major) || major < 0 || major > MAX_DEVICE_MAJOR || !Number.isInteger(minor) || minor < 0 || minor > MAX_DEVICE_MINOR) {
        fail(`device ${major}:${minor} cannot be encoded`, `majors go up to ${MAX_DEVICE_MAJOR}, minors up to ${MAX_DEVICE_MINOR}`);
      }
    }
    for (const x of entry.xattrs) {
      const problem = xattrProblem(x);
      if (problem) fail(problem);
    }
  }
}

function checkPath(path: ByteString, what: string, fail: (message: string, hint?: string) => never): void {
  if (path.startsWith('/')) fail(`${what} is absolute`, 'layer paths are relative to the layer root');
  if (path.includes('\0')) fail(`${what} contains a NUL byte`);
  // Component by component without split(): this runs for every entry.
  for (let start = 0; start <= path.length; ) {
    const slash = path.indexOf('/', start);
    const end = slash < 0 ? path.length : slash;
    const length = end - start;
    if (length === 2 && path.charCodeAt(start) === 0x2e && path.charCodeAt(start + 1) === 0x2e) {
      fail(`${what} has a ".." component`, 'layer paths may not climb out of their directory');
    }
    if (length > NAME_LEN) fail(`${what} has a component of ${length} bytes`, `names are at most ${NAME_LEN} bytes`);
    start = end + 1;
  }
}
