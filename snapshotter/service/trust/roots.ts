/**
 * The daemon's trust roots: `signatures.trust_dirs`, by default the
 * package's trust.d and /etc/containerd-integrity/trust.d. Each source may be
 * missing (an empty node trusts nothing until the administrator adds roots);
 * a file that is not PEM certificates stops the start (or a reload). What was
 * read is logged, and a node without any root says that every signed image
 * will be refused.
 */
import type { Logger } from '../../core/log.js';
import { loadTrustRoots, NODE_TRUST_SOURCES } from '../../signature/trust.js';
import type { X509Certificate } from '../../signature/x509.js';

export async function loadDaemonTrustRoots(trustDirs: readonly string[] | undefined, logger: Logger): Promise<X509Certificate[]> {
  const sources = trustDirs ?? NODE_TRUST_SOURCES;
  const roots = await loadTrustRoots(sources, { missingOk: true });
  const fields = { trustDirs: sources, roots: roots.map((r) => `${r.certificate.subject} (${r.source})`) };
  // Info, not a warning: a node that pulls no signed images needs no roots.
  logger.info(fields, roots.length === 0 ? 'no trust roots: the layers of every signed image will be refused' : 'trust roots loaded');
  return roots.map((r) => r.certificate);
}
