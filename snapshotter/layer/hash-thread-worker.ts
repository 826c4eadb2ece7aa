/**
 * The worker of HashThread: takes jobs from the shared ring in order, runs
 * them, and publishes how many are done. It blocks in Atomics.wait between
 * jobs; HashThread.close() terminates it.
 */
import { workerData } from 'node:worker_threads';
import { Control, JobRunner, type HashThreadData } from './hash-thread.js';

const data = workerData as HashThreadData;
const control = new Int32Array(data.control);
const runner = new JobRunner(data);

for (let job = 0; ; job++) {
  while (Atomics.load(control, Control.SUBMITTED) <= job) Atomics.wait(control, Control.SUBMITTED, job);
  runner.run(job);
  Atomics.store(control, Control.COMPLETED, job + 1);
  Atomics.notify(control, Control.COMPLETED);
}
