/**
 * PEM certificate lists (bundle chains, trust files, --cert/--chain files)
 * and the PEM form Delivery Kit writes (Go's pem.Encode: 64-column lines,
 * trailing newline).
 */
import { x509, type X509Certificate } from './x509.js';

const CERTIFICATE = 'CERTIFICATE';

/**
 * Every certificate in a PEM text. Text outside PEM blocks (comments, as in
 * CA bundles) is ignored; a block of another type (a private key in a trust
 * file, say) is an error, not something to skip silently.
 * Throws a plain Error with `what` in the message; callers wrap it in their error type.
 */
export function parsePemCertificates(pem: string, what: string): X509Certificate[] {
  let blocks: { type: string; rawData: ArrayBuffer }[];
  try {
    blocks = x509.PemConverter.decodeWithHeaders(pem);
  } catch (err) {
    throw new Error(`${what}: malformed PEM: ${(err as Error).message}`, { cause: err });
  }
  return blocks.map((block, i) => {
    if (block.type !== CERTIFICATE) throw new Error(`${what}: PEM block ${i + 1} is ${JSON.stringify(block.type)}, not ${CERTIFICATE}`);
    return parseDerCertificate(block.rawData, `${what}: PEM block ${i + 1}`);
  });
}

export function parseDerCertificate(der: ArrayBuffer | Uint8Array, what: string): X509Certificate {
  try {
    return new x509.X509Certificate(der instanceof Uint8Array ? Uint8Array.from(der) : der);
  } catch (err) {
    throw new Error(`${what}: not an X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
}

export function encodePemCertificates(certs: readonly X509Certificate[]): string {
  return certs.map((c) => `${x509.PemConverter.encode(c.rawData, CERTIFICATE).replace(/\r/g, '')}\n`).join('');
}

/** Whether `data` is PEM text rather than DER, as Delivery Kit decides it (a `-----` prefix). */
export function looksLikePem(data: Uint8Array): boolean {
  return Buffer.from(data.subarray(0, 5)).toString('latin1') === '-----';
}
