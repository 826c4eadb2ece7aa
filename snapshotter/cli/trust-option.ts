/**
 * `--trust <pem|dir>` (repeatable), shared by the commands that verify
 * signatures. Without it, the node's trust roots are used, so the CLI answers
 * as the node would.
 */
import type { Command } from 'commander';
import { loadNodeTrustRoots, loadTrustRoots, NODE_TRUST_DIR, type TrustRoot } from '../signature/trust.js';

export function addTrustOption(command: Command): Command {
  return command.option(
    '--trust <pem|dir>',
    `trust roots: a PEM file or a directory of *.pem/*.crt files; repeatable (default: the package's roots and ${NODE_TRUST_DIR})`,
    (value: string, previous: string[] = []) => [...previous, value],
  );
}

export function trustRootsFrom(sources: string[] | undefined): Promise<TrustRoot[]> {
  return sources?.length ? loadTrustRoots(sources) : loadNodeTrustRoots();
}
