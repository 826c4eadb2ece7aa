/**
 * Waiting for something another part of the system does in its own time,
 * without guessing how long it takes: a fixed sleep is too short on a loaded
 * CI machine and wasted time everywhere else.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `probe` every few milliseconds until it returns something; fails after `timeoutMs`, naming `what`. */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(3)) {
    const found = await probe();
    if (found !== undefined) return found;
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
