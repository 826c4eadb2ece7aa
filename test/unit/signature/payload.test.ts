import test from 'ava';
import { manifestPayload, signedMessage } from '../../../snapshotter/signature/payload.js';
import type { ImageManifest } from '../../../snapshotter/oci/types.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const D = 'd'.repeat(64);

const manifest: ImageManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${A}`, size: 1234 },
  layers: [
    {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: `sha256:${B}`,
      size: 56789,
      // Layer annotations are not part of the message.
      annotations: { 'io.deckhouse.delivery-kit.dm-verity-root-hash': 'c'.repeat(64) },
    },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${D}`, size: 0 },
  ],
  annotations: {
    'z.last': '1',
    'a.first': 'x',
    'io.deckhouse.delivery-kit.signature': 'AAAA',
    'io.deckhouse.delivery-kit.cert': 'BBBB',
    'io.deckhouse.delivery-kit.chain': '',
  },
};

test('payload: fields concatenated without separators, bundle keys left out, annotations sorted', (t) => {
  t.is(
    manifestPayload(manifest),
    `2application/vnd.oci.image.manifest.v1+json` +
      `sha256:${A}application/vnd.oci.image.config.v1+json1234` +
      `sha256:${B}application/vnd.oci.image.layer.v1.tar+gzip56789` +
      `sha256:${D}application/vnd.oci.image.layer.v1.tar0` +
      `a.firstxz.last1`,
  );
});

test('message: hex SHA-256 of the payload (computed with sha256sum)', (t) => {
  t.is(signedMessage(manifest), '80deb2ac0a5719a729d56cc83226b1cb9d5ee275d1a6b431f747a77fb184d995');
});

test('message: missing mediaType and annotations are empty, as Go zero values', (t) => {
  const bare: ImageManifest = {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${A}`, size: 7 },
    layers: [],
  };
  t.is(signedMessage(bare), '401c0f586619617d8c85c80bac243a91cef0b01e8f001af150ddba0e3a331f17');
});

test('message: annotation keys sort by UTF-8 bytes (Go), not UTF-16 units (JavaScript)', (t) => {
  const m: ImageManifest = {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${A}`, size: 7 },
    layers: [],
    // U+1F600 is a surrogate pair (D83D ...) and sorts before U+E000 in UTF-16, after it in UTF-8.
    annotations: { 'k\u{1F600}': '2', 'k\u{E000}': '1' },
  };
  t.is(signedMessage(m), 'f9de5146b35cc66a1c326a2431cc272c0770d1138727328dbce32cfc6559ab89');
});

test('message: changes when a signed field or annotation changes, not when a bundle key does', (t) => {
  const base = signedMessage(manifest);
  const edited = structuredClone(manifest);
  edited.annotations!['z.last'] = '2';
  t.not(signedMessage(edited), base);
  const resized = structuredClone(manifest);
  resized.layers[1]!.size = 1;
  t.not(signedMessage(resized), base);
  const resigned = structuredClone(manifest);
  resigned.annotations!['io.deckhouse.delivery-kit.signature'] = 'CCCC';
  resigned.layers[0]!.annotations!['io.deckhouse.delivery-kit.dm-verity-root-hash'] = 'e'.repeat(64);
  t.is(signedMessage(resigned), base);
});
