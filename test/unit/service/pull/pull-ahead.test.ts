import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { PullAhead, type AheadLayer } from '../../../../snapshotter/service/pull/pull-ahead.js';
import { until } from '../../../support/until.js';

const NS = 'k8s.io';
const layer = (n: number): AheadLayer => ({ chainId: undefined, layerDigest: `sha256:${String(n).repeat(64).slice(0, 64)}`, imageRef: 'r/app:1', manifestDigest: undefined });

/** A PullAhead whose conversions take `ms` each and record what they did. */
function setup(options: { ms?: number; keepMs?: number; convert?: (l: AheadLayer) => string | undefined } = {}) {
  const events: string[] = [];
  const dirs = new Set<string>();
  let made = 0;
  let running = 0;
  let mostAtOnce = 0;
  const ahead = new PullAhead<string>({
    makeDir: async () => {
      const dir = `/dir-${++made}`;
      dirs.add(dir);
      return dir;
    },
    convert: async (_ns, l, dir, preparing) => {
      mostAtOnce = Math.max(mostAtOnce, ++running);
      events.push(`start ${l.layerDigest.slice(7, 8)}${preparing ? ' (preparing)' : ''}`);
      await sleep(options.ms ?? 20);
      running--;
      events.push(`end ${l.layerDigest.slice(7, 8)}`);
      return options.convert ? options.convert(l) : `${l.layerDigest} in ${dir}`;
    },
    drop: async (dir) => void dirs.delete(dir),
    logger: silentLogger,
    ...(options.keepMs !== undefined ? { keepMs: options.keepMs } : {}),
  });
  return { ahead, events, dirs, mostAtOnce: () => mostAtOnce };
}

test('one conversion at a time, in the order staged; a layer staged twice is converted once', async (t) => {
  const { ahead, events, mostAtOnce } = setup();
  ahead.stage(NS, [layer(1), layer(2)], { preparing: false });
  ahead.stage(NS, [layer(2), layer(3)], { preparing: false });
  t.deepEqual(await ahead.take(NS, layer(3).layerDigest), { dir: '/dir-3', value: `${layer(3).layerDigest} in /dir-3` });
  t.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  t.is(mostAtOnce(), 1);
  t.truthy(await ahead.take(NS, layer(1).layerDigest));
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined, 'each is taken once');
  t.is(await ahead.take('other', layer(2).layerDigest), undefined, 'per namespace');
});

test('a blob that never came: undefined, its directory dropped, and the layers staged with it are not waited for', async (t) => {
  const { ahead, dirs, events } = setup({ convert: (l) => (l.layerDigest === layer(1).layerDigest ? undefined : 'ok') });
  ahead.stage(NS, [layer(1), layer(2)], { preparing: false });
  ahead.stage(NS, [layer(3)], { preparing: false });
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
  t.is(await ahead.take(NS, layer(2).layerDigest), undefined);
  t.truthy(await ahead.take(NS, layer(3).layerDigest), 'another pull is not affected');
  t.deepEqual(events, ['start 1', 'end 1', 'start 3', 'end 3']);
  t.deepEqual([...dirs], ['/dir-2']);
});

test('the layer whose Prepare waits: converted first and told so; when its blob never came the layers above it are still converted', async (t) => {
  const { ahead, dirs, events } = setup({ convert: (l) => (l.layerDigest === layer(1).layerDigest ? undefined : 'ok') });
  ahead.stage(NS, [layer(1), layer(2)], { preparing: true });
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
  // Its Prepare goes the writable way: staged again, now for its Commit, after the others.
  ahead.stage(NS, [layer(1), layer(2)], { preparing: false });
  t.deepEqual(await ahead.take(NS, layer(2).layerDigest), { dir: '/dir-2', value: 'ok' });
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
  t.deepEqual(events, ['start 1 (preparing)', 'end 1', 'start 2', 'end 2', 'start 1', 'end 1']);
  t.deepEqual([...dirs], ['/dir-2']);
});

test('only the first layer of a stage is the one being prepared, and only if it was not staged before', async (t) => {
  const { ahead, events } = setup();
  ahead.stage(NS, [layer(2), layer(3)], { preparing: false });
  ahead.stage(NS, [layer(1), layer(2)], { preparing: true });
  ahead.stage(NS, [layer(3), layer(4)], { preparing: true });
  await ahead.take(NS, layer(4).layerDigest);
  t.deepEqual(events.filter((e) => e.startsWith('start')), ['start 2', 'start 3', 'start 1 (preparing)', 'start 4']);
});

test('a failed conversion: the taker gets the error, the directory is dropped, the next layer still converts', async (t) => {
  const { ahead, dirs } = setup({
    convert: (l) => {
      if (l.layerDigest === layer(1).layerDigest) throw new Error('refused: not the signed blob');
      return 'ok';
    },
  });
  ahead.stage(NS, [layer(1), layer(2)], { preparing: false });
  await t.throwsAsync(ahead.take(NS, layer(1).layerDigest), { message: /not the signed blob/ });
  t.deepEqual(await ahead.take(NS, layer(2).layerDigest), { dir: '/dir-2', value: 'ok' });
  t.deepEqual([...dirs], ['/dir-2'], 'the taken directory is the taker\'s');
});

test('a conversion nobody takes is dropped after keepMs', async (t) => {
  const { ahead, dirs } = setup({ keepMs: 30 });
  ahead.stage(NS, [layer(1)], { preparing: false });
  await sleep(20);
  t.deepEqual([...dirs], ['/dir-1']);
  await until('the unclaimed conversion dropped', () => (dirs.size === 0 ? true : undefined), 10_000);
  t.is(await ahead.take(NS, layer(1).layerDigest), undefined);
});

test('close: what is queued does not start, the running one finishes, nothing staged is kept', async (t) => {
  const { ahead, dirs, events } = setup();
  ahead.stage(NS, [layer(1), layer(2)], { preparing: false });
  await sleep(5);
  await ahead.close();
  t.deepEqual(events, ['start 1', 'end 1']);
  t.deepEqual([...dirs], []);
  t.is(await ahead.take(NS, layer(2).layerDigest), undefined);
});
