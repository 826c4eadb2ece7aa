/**
 * The one entry point to @peculiar/x509: loads the Reflect metadata polyfill
 * its dependency-injection container needs first (import order is evaluation
 * order). The library finds Node's WebCrypto
 * as `globalThis.crypto` by itself (Node 20+). Import X.509 classes from here,
 * never from '@peculiar/x509' directly.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export { x509 };
export type X509Certificate = x509.X509Certificate;
