/**
 * Deletion that can wait: the upper dir of a layer Commit built from its blob
 * (or from that dir) is garbage at once, but deleting its thousands of files
 * while containerd writes the next layer of the same pull slows that write
 * (measured in bench/README.md: on ext4 with `discard`, containerd's apply of
 * the next layer took 2× as long). So the directories are renamed into an
 * `rm-*` directory at once — cheap, and crash-safe: start-up deletes every
 * `rm-*` — and deleted once the snapshotter has changed nothing for
 * `quietMs`: after the pull, and not while containers start (each start is a
 * Prepare, each stop a Remove). Busy nodes are never quiet, so whatever waited
 * `maxDelayMs` is deleted all the same.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isNotFound } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { REMOVING_PREFIX } from './layout.js';

export interface DeferredRemovalOptions {
  /** Where the `rm-*` directories go: beside the snapshots, on the same file system. */
  dir: string;
  logger: Logger;
  /** How long without a discard or a postponement the deletion waits. */
  quietMs?: number;
  /** How long the first of the waiting directories waits at most. */
  maxDelayMs?: number;
  /**
   * Directories waiting or being deleted here, which Cleanup leaves alone:
   * containerd calls Cleanup after every garbage collection — after every
   * `ctr run --rm` — and deleting them then would bring the cost back into
   * whatever runs next.
   */
  busy: Set<string>;
}

export class DeferredRemoval {
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  private readonly busy: Set<string>;
  private readonly waiting = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** When what waits must go at the latest (ms since the epoch). */
  private deadline = 0;
  private deleting: Promise<void> = Promise.resolve();

  constructor(options: DeferredRemovalOptions) {
    this.dir = options.dir;
    this.logger = options.logger;
    this.quietMs = options.quietMs ?? 5_000;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.busy = options.busy;
  }

  /**
   * Moves `paths` (on the file system of `dir`) into a new `rm-*` directory
   * now and deletes it later. A path that cannot be moved is left where it is
   * for Cleanup, which knows it as a leftover; the request does not fail.
   */
  discard(paths: readonly string[], log: Logger = this.logger): void {
    const trash = join(this.dir, `${REMOVING_PREFIX}${randomUUID()}`);
    try {
      mkdirSync(trash, { mode: 0o700 });
    } catch (err) {
      log.warn({ err, path: trash }, 'cannot make a directory to discard into; Cleanup will delete the leftovers in place');
      return;
    }
    this.busy.add(trash);
    for (const path of paths) moveAside(path, join(trash, basename(path)), log);
    if (this.waiting.size === 0) this.deadline = Date.now() + this.maxDelayMs;
    this.waiting.add(trash);
    this.postpone();
  }

  /** The snapshotter changed something: what waits waits `quietMs` more, up to its deadline. */
  postpone(): void {
    if (this.waiting.size === 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.deleteWaiting(), Math.max(0, Math.min(this.quietMs, this.deadline - Date.now())));
    this.timer.unref();
  }

  /** Shutdown: waits for a deletion in progress; what still waits is left to start-up, which deletes every `rm-*`. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.deleting;
  }

  private deleteWaiting(): Promise<void> {
    const batch = [...this.waiting];
    this.waiting.clear();
    this.deleting = this.deleting.then(async () => {
      for (const path of batch) {
        try {
          await rm(path, { recursive: true, force: true });
        } catch (err) {
          this.logger.warn({ err, path }, 'cannot delete a discarded directory; Cleanup will try again');
        } finally {
          this.busy.delete(path);
        }
      }
      this.logger.debug({ directories: batch.length }, 'discarded directories deleted');
    });
    return this.deleting;
  }
}

/** A rename that must not fail its request: a failure is logged, and Cleanup deletes what stayed. */
export function moveAside(from: string, to: string, log: Logger): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if (!isNotFound(err)) log.warn({ err, path: from }, 'cannot move aside what is to be deleted; Cleanup will delete it');
  }
}
