import test from 'ava';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../../snapshotter/core/errors.js';
import { parseFilter, parseFilters, type FieldLookup } from '../../../snapshotter/core/filters.js';

/** An object as filters see it: top-level fields plus labels. */
function fields(obj: Record<string, string>, labels?: Record<string, string>): FieldLookup {
  return (path) => {
    if (path[0] === 'labels') {
      if (!labels) return undefined;
      const key = path.slice(1).join('.');
      return Object.hasOwn(labels, key) ? labels[key] : undefined;
    }
    return path.length === 1 && Object.hasOwn(obj, path[0]!) ? obj[path[0]!] : undefined;
  };
}

const foo = fields({ name: 'foo', other: 'x' }, { bar: 'baz', 'a.b': 'dotted', 'containerd.io/gc.root': 'r', empty: '' });
const bar = fields({ name: 'bar' });

const matching: Array<[string, boolean, boolean]> = [
  // filter, matches foo, matches bar
  ['', true, true],
  ['name==foo', true, false],
  ['name == foo', true, false],
  ['name!=foo', false, true],
  ['other!=x', false, true], // absent fields compare as ""
  ['other', true, false],
  ['labels', false, false], // a label named "" does not exist
  ['labels.bar', true, false],
  ['labels.bar==baz', true, false],
  ['labels.a.b==dotted', true, false],
  ['labels."a.b"==dotted', true, false],
  ['labels."containerd.io/gc.root"==r', true, false],
  ['labels."containerd.io/gc.root"=="r"', true, false],
  ['labels.empty', true, false],
  ['labels.empty==""', true, false],
  ['name==foo,labels.bar', true, false],
  ['name==foo,labels.nope', false, false],
  ['name~=^f', true, false],
  ['name~=/^(f|b)/', true, true],
  ['name~=|o+$|', true, false],
  ['name~="(?i)^FOO$"', true, false],
  ['name~=ar', false, true],
  ['name=="\\x66oo"', true, false],
  ['name=="\\u0066oo"', true, false],
  ['name=="\\146oo"', true, false],
  ['name==foo=bar', false, false],
  ['unknown!=""', false, false],
  ['unknown==""', false, false],
];

for (const [filter, matchesFoo, matchesBar] of matching) {
  test(`filter ${JSON.stringify(filter)}`, (t) => {
    const f = parseFilter(filter);
    t.is(f.matches(foo), matchesFoo, 'foo');
    t.is(f.matches(bar), matchesBar, 'bar');
  });
}

test('several filters are alternatives; none matches everything', (t) => {
  const any = parseFilters(['name==foo', 'name==bar']);
  t.true(any.matches(foo));
  t.true(any.matches(bar));
  t.false(parseFilters(['name==nope', 'labels.nope']).matches(foo));
  t.true(parseFilters([]).matches(bar));
});

const invalid = [
  'name==',
  'name=foo',
  'name===foo',
  'name==foo,',
  ',name==foo',
  'name==foo ',
  'name==foo bar',
  'name.',
  'name..x',
  '"name',
  'labels.|bar|',
  'labels./bar/',
  'name=="unterminated',
  'name=="bad \\q escape"',
  'name=="\\x6"',
  'name==,',
  'name==.foo',
  '==foo',
  'name~=(',
  'na\0me',
];

for (const filter of invalid) {
  test(`invalid filter ${JSON.stringify(filter)}`, (t) => {
    const err = t.throws(() => parseFilters(['name==ok', filter]), { instanceOf: InvalidArgumentError });
    t.truthy(err!.hint);
  });
}

test('errors point at the offending character', (t) => {
  t.throws(() => parseFilter('name==foo x'), { message: /\[name==foo >\| \|< x\]: unexpected input/ });
  t.throws(() => parseFilter('labels;x'), { message: /\[labels >\|;\|< x\]: expected an operator/ });
  t.throws(() => parseFilter('name=foo'), { message: /unsupported operator "="/ });
});

test('any input either parses or is an InvalidArgumentError', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'ab_.,=!~"/| \\x\n'.split('')), maxLength: 24 }), (input) => {
      try {
        parseFilter(input).matches(foo);
      } catch (err) {
        if (!(err instanceof InvalidArgumentError)) throw err;
      }
    }),
  );
  t.pass();
});
