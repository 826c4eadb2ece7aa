/**
 * Where a mount destination lands inside a container's root filesystem: the
 * path resolved the way runc resolves it (filepath-securejoin's SecureJoin,
 * github.com/cyphar/filepath-securejoin), so the mountpoints layer can hold
 * exactly the target runc will mount onto:
 *
 *   - components are taken one at a time; a component that is a symlink in
 *     the tree is replaced by its target (an absolute target restarts from
 *     the root, a relative one continues from the symlink's directory);
 *   - `..` is applied lexically and never climbs above the root;
 *   - a component that does not exist (or lies below a non-directory) counts
 *     as a plain name: the rest is joined lexically;
 *   - more than 255 symlinks is ELOOP.
 *
 * Pure: the tree is read through `TreeView`, so the same code resolves over
 * an image's merged layers (merged-tree.ts) or a test's literal tree.
 */
import { InvalidArgumentError } from '../../core/errors.js';
import type { ByteString } from '../../layer/tar/entry.js';

/** A path of the tree as its components (byte strings), `[]` being the root. */
export type TreePath = readonly ByteString[];

export interface TreeNode {
  type: 'directory' | 'file' | 'symlink' | 'other';
  /** The symlink's target, for a symlink. */
  target?: ByteString;
}

/** The tree being resolved in: what is at a path, undefined when nothing is. */
export interface TreeView<N extends TreeNode = TreeNode> {
  lookup(path: TreePath): Promise<N | undefined>;
}

/** securejoin's limit (maxSymlinkLimit). */
export const MAX_SYMLINKS = 255;

/** Resolves `path` (absolute or not, taken from the root) inside `tree`; returns the components of the target. */
export async function resolveInRoot(path: ByteString, tree: TreeView): Promise<ByteString[]> {
  const resolved: ByteString[] = [];
  let rest = path;
  let links = 0;
  while (rest !== '') {
    const slash = rest.indexOf('/');
    const part = slash < 0 ? rest : rest.slice(0, slash);
    rest = slash < 0 ? '' : rest.slice(slash + 1);
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const node = await tree.lookup([...resolved, part]);
    if (node?.type !== 'symlink') {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new InvalidArgumentError(`resolving ${JSON.stringify(path)} followed more than ${MAX_SYMLINKS} symlinks (ELOOP)`, {
        hint: "the image's symlinks form a loop on this path; runc cannot mount there either",
      });
    }
    const target = node.target ?? '';
    if (target.startsWith('/')) resolved.length = 0;
    rest = rest === '' ? target : `${target}/${rest}`;
  }
  return resolved;
}
