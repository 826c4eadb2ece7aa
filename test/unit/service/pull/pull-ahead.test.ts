import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { PullAhead, type AheadLayer } from '../../../../snapshotter/service/pull/pull-ahead.js';
import { until } from '../../../support/until.js';

const NS = 'k8s.io';
const layer = (n: number): AheadLayer => ({ chainId: undefined, layerDigest: `sha256:${String(n).repeat(64).slice(0, 64)}`, imageRef: 'r/app:1', manifestDigest: undefined });
const short = (l: AheadLayer) => l.layerDigest.slice(7, 8);

/**
 * A PullAhead whose conversions take `ms` each and record what they did.
 * The blobs of `missing` layers are not there: they wait for `fetched(n)`
 * (containerd's fetch), or `fetched(n, false)` for a blob that never comes.
 */
function setup(options: { ms?: number; keepMs?: number; missing?: number[]; fail?: number; findMs?: Record<number, number> } = {}) {
  const events: string[] = [];
  const dirs = new Set<string>();
  const arrivals = new Map<string, (arrived: boolean) => void>();
  const waits = new Map<string, Promise<boolean>>();
  for (const n of options.missing ?? []) {
    waits.set(short(layer(n)), new Promise((resolve) => arrivals.set(short(layer(n)), resolve)));
  }
  let made = 0;
  let running = 0;
  let mostAtOnce = 0;
  const ahead = new PullAhead<string>({
    makeDir: async () => {
      const dir = `/dir-${++made}`;
      dirs.add(dir);
      return dir;
    },
    convert: async (_ns, l, dir, steps) => {
      // Looking for the blob (containerd's content store, a registry's answer) takes its time.
      await sleep(options.findMs?.[Number(short(l))] ?? 0);
      const wait = waits.get(short(l));
      if (wait) {
        steps.fetching();
        events.push(`fetching ${short(l)}`);
        if (!(await wait)) return undefined;
      }
      return steps.turn(async () => {
        mostAtOnce = Math.max(mostAtOnce, ++running);
        events.push(`start ${short(l)}`);
        await sleep(options.ms ?? 20);
        running--;
        events.push(`end ${short(l)}`);
        if (options.fail !== undefined && l.layerDigest === layer(options.fail).layerDigest) throw new Error('refused: not the signed blob');
        return `${l.layerDigest} in ${dir}`;
      });
    },
    drop: async (dir) => void dirs.delete(dir),
    logger: silentLogger,
    ...(options.keepMs !== undefined ? { keepMs: options.keepMs } : {}),
  });
  const fetched = (n: number, arrived = true) => arrivals.get(short(layer(n)))!(arrived);
  return { ahead, events, dirs, fetched, mostAtOnce: () => mostAtOnce };
}

test('one conversion at a time, in the order staged; a layer staged twice is converted once', async (t) => {
  const { ahead, events, mostAtOnce } = setup();
  ahead.stage(NS, [layer(1), layer(2)]);
  ahead.stage(NS, [layer(2), layer(3)]);
  t.deepEqual(await ahead.take(NS, layer(3).layerDigest), { dir: '/dir-3', value: `${layer(3).layerDigest} in /dir-3` });
  t.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  t.is(mostAtOnce(), 1);
  t.truthy(await ahead.take(NS, layer(1).layerDigest));
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined, 'each is taken once');
  t.is(await ahead.take('other', layer(2).layerDigest), undefined, 'per namespace');
});

test('the order staged holds even when a later layer finds its blob first', async (t) => {
  const { ahead, events } = setup({ findMs: { 1: 40 } });
  ahead.stage(NS, [layer(1), layer(2)]);
  t.truthy(await ahead.take(NS, layer(2).layerDigest));
  t.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2']);
});

test('a layer waiting for its fetch holds up none of the others', async (t) => {
  const { ahead, events, fetched } = setup({ missing: [1] });
  ahead.stage(NS, [layer(1), layer(2), layer(3)]);
  t.truthy(await ahead.take(NS, layer(3).layerDigest));
  fetched(1);
  t.truthy(await ahead.take(NS, layer(1).layerDigest));
  t.deepEqual(events, ['fetching 1', 'start 2', 'end 2', 'start 3', 'end 3', 'start 1', 'end 1']);
});

test('without waitForFetch (a Prepare): a layer waiting for its fetch is not waited for and stays staged for its Commit', async (t) => {
  const { ahead, fetched, dirs } = setup({ missing: [1] });
  ahead.stage(NS, [layer(1), layer(2)]);
  t.is(await ahead.take(NS, layer(1).layerDigest, { waitForFetch: false }), undefined);
  t.deepEqual(await ahead.take(NS, layer(2).layerDigest, { waitForFetch: false }), { dir: '/dir-2', value: `${layer(2).layerDigest} in /dir-2` },
    'one whose blob is there is waited for');
  fetched(1);
  t.deepEqual(await ahead.take(NS, layer(1).layerDigest), { dir: '/dir-1', value: `${layer(1).layerDigest} in /dir-1` }, 'the Commit takes it');
  t.deepEqual([...dirs].sort(), ['/dir-1', '/dir-2']);
});

test('without waitForFetch: a conversion whose blob arrived is taken, even after it had to wait for it', async (t) => {
  const { ahead, fetched } = setup({ missing: [1] });
  ahead.stage(NS, [layer(1)]);
  await sleep(5);
  fetched(1);
  await sleep(5);
  t.truthy(await ahead.take(NS, layer(1).layerDigest, { waitForFetch: false }));
});

test('a blob that never came: undefined and its directory dropped; the other layers are not affected', async (t) => {
  const { ahead, dirs, events, fetched } = setup({ missing: [1] });
  ahead.stage(NS, [layer(1), layer(2)]);
  t.truthy(await ahead.take(NS, layer(2).layerDigest));
  fetched(1, false);
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
  t.deepEqual(events, ['fetching 1', 'start 2', 'end 2']);
  t.deepEqual([...dirs], ['/dir-2']);
});

test('a failed conversion: the taker gets the error, the directory is dropped, the next layer still converts', async (t) => {
  const { ahead, dirs } = setup({ fail: 1 });
  ahead.stage(NS, [layer(1), layer(2)]);
  await t.throwsAsync(ahead.take(NS, layer(1).layerDigest), { message: /not the signed blob/ });
  t.deepEqual(await ahead.take(NS, layer(2).layerDigest), { dir: '/dir-2', value: `${layer(2).layerDigest} in /dir-2` });
  t.deepEqual([...dirs], ['/dir-2'], "the taken directory is the taker's");
});

test('a conversion nobody takes is dropped after keepMs', async (t) => {
  const { ahead, dirs } = setup({ keepMs: 30 });
  ahead.stage(NS, [layer(1)]);
  await sleep(20);
  t.deepEqual([...dirs], ['/dir-1']);
  await until('the unclaimed conversion dropped', () => (dirs.size === 0 ? true : undefined), 10_000);
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
});

test('close: what is queued does not start, the running one finishes, nothing staged is kept, a fetch is not waited for', async (t) => {
  const { ahead, dirs, events } = setup({ missing: [3] });
  ahead.stage(NS, [layer(1), layer(2), layer(3)]);
  await sleep(5);
  await ahead.close();
  t.deepEqual([...events].sort(), ['end 1', 'fetching 3', 'start 1']);
  t.deepEqual([...dirs], ['/dir-3'], 'the one waiting for its fetch goes when that wait ends');
  t.is(await ahead.take(NS, layer(2).layerDigest), undefined);
});
