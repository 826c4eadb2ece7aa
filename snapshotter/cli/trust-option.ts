/**
 * `--trust <pem|dir>` (repeatable), shared by the commands that verify
 * signatures. Without it, the node's trust roots are used, so the CLI answers
 * as the node would.
 */
import type { Command } from 'commander';
import { loadNodeTrustRoots, loadTrustRoots, NODE_TRUST_DIR } from '../signature/trust.js';
import type { X509Certificate } from '../signature/x509.js';

export function addTrustOption(command: Command): Command {
  return command.option(
    '--trust <pem|dir>',
    `trust roots: a PEM file or a directory of *.pem/*.crt files; repeatable (default: the package's roots and ${NODE_TRUST_DIR})`,
    (value: string, previous: string[] = []) => [...previous, value],
  );
}

/** The certificates of `--trust`, or the node's trust roots without it. */
export async function trustRootsFrom(sources: string[] | undefined): Promise<X509Certificate[]> {
  const roots = sources?.length ? await loadTrustRoots(sources) : await loadNodeTrustRoots();
  return roots.map((root) => root.certificate);
}
