import test from 'ava';
import { repositoryLocation } from '../../../../snapshotter/service/registry/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

const cases: Array<[string, ReturnType<typeof repositoryLocation>]> = [
  ['docker.io/library/busybox:1.36', { host: 'docker.io', repository: 'library/busybox' }],
  ['busybox', { host: 'docker.io', repository: 'library/busybox' }],
  ['team/app:1', { host: 'docker.io', repository: 'team/app' }],
  ['registry.example:5000/d8/app@' + D, { host: 'registry.example:5000', repository: 'd8/app' }],
  ['registry.example/d8/team/app:1.0@' + D, { host: 'registry.example', repository: 'd8/team/app' }],
  ['127.0.0.1:5000/test/fresh:v1', { host: '127.0.0.1:5000', repository: 'test/fresh' }],
  ['localhost/app', { host: 'localhost', repository: 'app' }],
  ['', undefined],
  ['registry.example/', undefined],
  ['registry.example/App:1', undefined],
  ['registry.example/a//b', undefined],
];

for (const [reference, expected] of cases) {
  test(`repositoryLocation(${JSON.stringify(reference)})`, (t) => {
    t.deepEqual(repositoryLocation(reference), expected);
  });
}
