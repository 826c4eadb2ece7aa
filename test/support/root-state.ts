/**
 * A snapshotter root judged from outside, the way a crash test needs it:
 * everything a kill -9 could leave half done, as a list of problems (empty
 * when the root is consistent). Read beside the running daemon: the
 * metadata database opened read-only, the files, /proc/self/mountinfo and
 * the loop devices in /sys/block.
 *
 *   t.deepEqual(await rootProblems(snapshotter), []);
 */
import { readdir, readFile, rm, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { wallClock } from '../../snapshotter/core/clock.js';
import { LAYER_HASH_TREE, LAYER_IMAGE } from '../../snapshotter/service/layers/store.js';
import { SqliteMetadataStore } from '../../snapshotter/service/metadata/sqlite.js';
import { parseMountInfo } from '../../snapshotter/service/mounts/mountinfo.js';
import { layerReferences } from '../../snapshotter/service/mounts/reconcile.js';
import { veritysetupFormat } from './veritysetup.js';

export interface RootUnderTest {
  /** The snapshotter's own directory: root, socket and mount dir are below it. */
  readonly dir: string;
  readonly root: string;
  readonly mountsDir: string;
}

/** Names of files and directories a request in flight makes; none may survive start-up. */
const IN_FLIGHT = /^(\.tmp-|new-|rm-)/;

export interface RootCheckOptions {
  /**
   * Whether layers nobody references may be mounted: a running daemon keeps
   * them for a grace period (mounts/manager.ts); right after start-up there
   * must be none. Default false.
   */
  idleMounts?: boolean;
}

export async function rootProblems(sn: RootUnderTest, options: RootCheckOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  const store = new SqliteMetadataStore(join(sn.root, 'metadata.db'), { clock: wallClock(), readOnly: true });
  try {
    const snapshots = store.listAll();
    const dirs = join(sn.root, 'snapshots');
    const names = await readdir(dirs);
    for (const name of names) {
      if (!snapshots.some((s) => String(s.id) === name)) problems.push(`snapshots/${name}: no snapshot in the metadata has this directory`);
    }
    const scratch = await mkdtemp('/tmp/root-state-');
    try {
      for (const s of snapshots) {
        const where = `snapshot ${s.id} (${s.kind} ${JSON.stringify(s.key)} in ${s.namespace})`;
        if (!names.includes(String(s.id))) {
          problems.push(`${where}: its directory is missing`);
          continue;
        }
        const dir = join(dirs, String(s.id));
        const files = (await readdir(dir)).sort();
        for (const f of files.filter((f) => IN_FLIGHT.test(f))) problems.push(`${where}: leftover ${f}`);
        const expected = s.kind === 'committed' ? [LAYER_IMAGE, LAYER_HASH_TREE].sort() : s.kind === 'active' ? ['fs', 'work'] : ['fs'];
        if (files.join() !== expected.join()) problems.push(`${where}: holds ${JSON.stringify(files)}, expected ${JSON.stringify(expected)}`);
        if (s.kind !== 'committed' || !files.includes(LAYER_IMAGE) || !files.includes(LAYER_HASH_TREE)) continue;
        // The recorded root hash, recomputed by the oracle, and the stored tree compared with its tree.
        const recorded = store.committedLayer(s.id)?.rootHash;
        const tree = join(scratch, `${s.id}.verity`);
        const oracle = await veritysetupFormat(join(dir, LAYER_IMAGE), tree);
        if (oracle.rootHash === undefined || oracle.rootHash !== recorded) {
          problems.push(`${where}: veritysetup computes root hash ${oracle.rootHash ?? `(failed: ${oracle.output})`}, the metadata records ${recorded}`);
        } else if (!(await readFile(tree)).equals(await readFile(join(dir, LAYER_HASH_TREE)))) {
          problems.push(`${where}: ${LAYER_HASH_TREE} is not the hash tree of ${LAYER_IMAGE}`);
        }
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const committed = new Set(snapshots.filter((s) => s.kind === 'committed').map((s) => s.id));
    const mountable = (id: number) => (options.idleMounts ? committed.has(id) : false);
    problems.push(...(await mountProblems(sn, layerReferences(snapshots), mountable)));
  } finally {
    store.close();
  }
  return problems;
}

/**
 * Mounts under the snapshotter's directory: the layers that active
 * snapshots and views stand on (and idle committed layers, if allowed), once
 * each, at `<mountsDir>/<id>`. Loop devices whose backing file is under the
 * root: each one a mounted layer's.
 */
async function mountProblems(sn: RootUnderTest, needed: ReadonlyMap<number, number>, idle: (id: number) => boolean): Promise<string[]> {
  const problems: string[] = [];
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  // The daemon's tmpfs for unpack upper dirs (service/unpack-scratch.ts): at most one, mounted fresh at each start.
  const scratch = join(sn.root, 'unpack');
  const scratchMounts = mounts.filter((m) => m.mountPoint === scratch);
  if (scratchMounts.length > 1 || scratchMounts.some((m) => m.fsType !== 'tmpfs')) {
    problems.push(`${scratch}: ${scratchMounts.map((m) => m.fsType).join(', ')} mounted, not one tmpfs`);
  }
  const ours = mounts.filter((m) => m.mountPoint.startsWith(`${sn.dir}/`) && m.mountPoint !== scratch);
  const mounted = new Map<number, number>();
  for (const m of ours) {
    const id = m.mountPoint.startsWith(`${sn.mountsDir}/`) ? Number(m.mountPoint.slice(sn.mountsDir.length + 1)) : NaN;
    if (!Number.isInteger(id) || !(needed.has(id) || idle(id))) problems.push(`mount at ${m.mountPoint} (${m.fsType} ${m.source}): no snapshot needs it`);
    else mounted.set(id, (mounted.get(id) ?? 0) + 1);
  }
  for (const [id, count] of mounted) if (count > 1) problems.push(`layer ${id} is mounted ${count} times`);
  for (const id of needed.keys()) if (!mounted.has(id)) problems.push(`layer ${id} is needed by a snapshot but not mounted`);
  const sources = new Set(ours.map((m) => m.source));
  for (const loop of await loopDevices()) {
    if (!loop.backingFile.startsWith(`${sn.root}/`)) continue;
    if (!sources.has(loop.device)) problems.push(`${loop.device} is bound to ${loop.backingFile} but no layer mount uses it`);
  }
  return problems;
}

/** Bound loop devices and their backing files (`(deleted)` appended when the file is gone). */
export async function loopDevices(): Promise<{ device: string; backingFile: string }[]> {
  const result: { device: string; backingFile: string }[] = [];
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    const backingFile = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => undefined);
    if (backingFile !== undefined) result.push({ device: `/dev/${name}`, backingFile: backingFile.trimEnd() });
  }
  return result;
}
