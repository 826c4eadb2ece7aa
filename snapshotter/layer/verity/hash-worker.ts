/**
 * Worker thread of HashPool: digests of whole data blocks, batch by batch.
 * The batch buffer goes back with the digests so the pool can reuse it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SaltedDigest } from './block-hash.js';
import { verityParams } from './params.js';
import type { HashReply, HashRequest, HashWorkerData } from './hash-pool.js';

const { salt } = workerData as HashWorkerData;
const hasher = new SaltedDigest(salt);
const port = parentPort!;

port.on('message', ({ id, buffer, length }: HashRequest) => {
  const digests = new Uint8Array((length / verityParams.dataBlockBytes) * verityParams.digestBytes);
  hasher.digestBlocks(new Uint8Array(buffer, 0, length), digests);
  const reply: HashReply = { id, buffer, digests };
  port.postMessage(reply, [buffer, digests.buffer]);
});
