import test from 'ava';
import fc from 'fast-check';
import { ImagePatterns, repositoryOf } from '../../../snapshotter/policy/image-patterns.js';

test('a pattern covers the whole name or its repository; * crosses "/", ? is one character', (t) => {
  const p = new ImagePatterns(['registry.example/d8/*', 'registry.example/app', 'local?/x:v1']);
  t.is(p.match('registry.example/d8/ctrl:1.0'), 'registry.example/d8/*');
  t.is(p.match('registry.example/d8/nested/ctrl@sha256:' + 'a'.repeat(64)), 'registry.example/d8/*');
  t.is(p.match('registry.example/app:2'), 'registry.example/app');
  t.is(p.match('registry.example/app@sha256:' + 'b'.repeat(64)), 'registry.example/app');
  t.is(p.match('local1/x:v1'), 'local?/x:v1');
  t.is(p.match('registry.example/application:2'), undefined, 'a repository prefix is not a match');
  t.is(p.match('registry.example/d8'), undefined);
  t.is(p.match('local12/x:v1'), undefined);
  t.is(p.match('other.example/d8/ctrl:1'), undefined);
});

test('regular-expression characters in a pattern stand for themselves', (t) => {
  const p = new ImagePatterns(['r.example/a+b/(c)']);
  t.truthy(p.match('r.example/a+b/(c):1'));
  t.falsy(p.match('rxexample/aab/(c):1'));
});

test('repositoryOf drops the tag and digest, not a registry port', (t) => {
  t.is(repositoryOf('localhost:5000/app:1'), 'localhost:5000/app');
  t.is(repositoryOf('localhost:5000/app'), 'localhost:5000/app');
  t.is(repositoryOf('r/app:1@sha256:' + 'c'.repeat(64)), 'r/app');
  t.is(repositoryOf('sha256:' + 'd'.repeat(64)), 'sha256');
});

test('no patterns protect nothing; "*" protects everything', (t) => {
  t.true(new ImagePatterns([]).empty);
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), (name) => new ImagePatterns([]).match(name) === undefined && new ImagePatterns(['*']).match(name) === '*'),
  );
});
