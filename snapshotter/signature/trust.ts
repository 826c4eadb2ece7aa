/**
 * Trust roots: the CA certificates a signature chain must end at.
 *
 * A source is a PEM file (one or more certificates) or a directory whose
 * `*.pem` and `*.crt` files are read in name order (other files, such as a
 * README, are ignored). A node trusts the package's own directory plus
 * NODE_TRUST_DIR, which the administrator fills.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isNotFound, NotFoundError } from '../core/errors.js';
import { sameCertificate } from './chain.js';
import { parsePemCertificates } from './pem.js';
import type { X509Certificate } from './x509.js';

/** Where the administrator puts extra roots on a node. */
export const NODE_TRUST_DIR = '/etc/containerd-integrity/trust.d';

/** Roots shipped with the package: `trust.d/` at the package root (dist/snapshotter/signature → ../../../). */
export const PACKAGE_TRUST_DIR = fileURLToPath(new URL('../../../trust.d/', import.meta.url));

const CERT_FILE = /\.(pem|crt)$/;

export interface TrustRoot {
  certificate: X509Certificate;
  /** The file it was read from, for messages. */
  source: string;
}

export interface LoadTrustOptions {
  /** A source that does not exist contributes nothing instead of failing (the node's optional directories). */
  missingOk?: boolean;
}

export async function loadTrustRoots(sources: readonly string[], options: LoadTrustOptions = {}): Promise<TrustRoot[]> {
  const roots: TrustRoot[] = [];
  for (const source of sources) {
    for (const file of await certificateFiles(source, options)) {
      const text = await readFile(file, 'utf8');
      let certs: X509Certificate[];
      try {
        certs = parsePemCertificates(text, file);
      } catch (err) {
        throw new ConfigError(`trust root file ${(err as Error).message}`, { cause: err, hint: 'trust files hold PEM CERTIFICATE blocks only' });
      }
      if (certs.length === 0) throw new ConfigError(`trust root file ${file} holds no PEM certificate`, { hint: 'remove it or put the root CA in PEM form in it' });
      for (const certificate of certs) {
        if (!roots.some((r) => sameCertificate(r.certificate, certificate))) roots.push({ certificate, source: file });
      }
    }
  }
  return roots;
}

/** Where a node's trust roots are unless configured otherwise: the package's directory and NODE_TRUST_DIR. */
export const NODE_TRUST_SOURCES: readonly string[] = [PACKAGE_TRUST_DIR, NODE_TRUST_DIR];

/** The node's trust roots: NODE_TRUST_SOURCES, each optional. */
export function loadNodeTrustRoots(): Promise<TrustRoot[]> {
  return loadTrustRoots(NODE_TRUST_SOURCES, { missingOk: true });
}

async function certificateFiles(source: string, options: LoadTrustOptions): Promise<string[]> {
  let info;
  try {
    info = await stat(source);
  } catch (err) {
    if (isNotFound(err)) {
      if (options.missingOk) return [];
      throw new NotFoundError(`trust roots ${source} do not exist`, { hint: 'pass a PEM file or a directory of *.pem / *.crt files' });
    }
    throw err;
  }
  if (!info.isDirectory()) return [source];
  const names = (await readdir(source, { withFileTypes: true }))
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && CERT_FILE.test(e.name))
    .map((e) => e.name)
    .sort();
  return names.map((name) => join(source, name));
}
