/**
 * containerd's filter language (package `filters`), as its List/Walk calls send it:
 *
 *   filters   := one string per alternative; an object matches if ANY matches
 *   selectors := selector ("," selector)*          all must match
 *   selector  := fieldpath [operator value]        no operator: the field is present
 *   fieldpath := field ("." field)*
 *   field     := [A-Za-z0-9_]+ | "quoted"
 *   operator  := "==" | "!=" | "~="                ~= is a regexp search
 *   value     := quoted | run of printable characters without "," or spaces
 *   quoted    := Go string syntax in "..."; a ~= value may also use /.../ or |...|
 *
 * Behaviour follows containerd 1.6 to the letter (including that `!=` matches
 * an absent field), with one deliberate difference: a `~=` pattern that does
 * not compile is a parse error (INVALID_ARGUMENT) instead of silently matching
 * nothing. Patterns are Go RE2 syntax; the common subset runs as JS RegExp,
 * with leading inline flags like `(?i)` turned into RegExp flags.
 */
import { InvalidArgumentError } from './errors.js';

/** Value of a field path on the object being matched; undefined = not present. */
export type FieldLookup = (fieldpath: readonly string[]) => string | undefined;

export interface Filter {
  matches(lookup: FieldLookup): boolean;
}

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  pattern: RegExp | undefined;
}

const SYNTAX_HINT =
  'write selectors like name==foo, labels."containerd.io/gc.root", kind!=view, name~=^a; ' +
  'join with "," for AND and pass several filters for OR';

/** Several filter strings: an object matches when any one of them matches. No filters match everything. */
export function parseFilters(filters: readonly string[]): Filter {
  const alternatives = filters.map(parseFilter);
  if (alternatives.length === 0) return { matches: () => true };
  return { matches: (lookup) => alternatives.some((f) => f.matches(lookup)) };
}

/** One filter string; the empty string matches everything. */
export function parseFilter(input: string): Filter {
  if (input === '') return { matches: () => true };
  const selectors = new Parser(input).parse();
  return { matches: (lookup) => selectors.every((s) => matchSelector(s, lookup)) };
}

function matchSelector(s: Selector, lookup: FieldLookup): boolean {
  const value = lookup(s.fieldpath);
  switch (s.operator) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === s.value;
    case '!=':
      return (value ?? '') !== s.value;
    case '~=':
      return s.pattern!.test(value ?? '');
  }
}

// ---- scanner ---------------------------------------------------------------

type TokenKind = 'eof' | 'quoted' | 'value' | 'field' | 'separator' | 'operator' | 'illegal' | 'other';

interface Token {
  kind: TokenKind;
  /** Index (in code points) where the token starts. */
  pos: number;
  text: string;
}

const QUOTES = new Set(['"', '/', '|']);
const SEPARATORS = new Set([',', '.']);
const OPERATOR_CHARS = new Set(['=', '!', '~']);
const SPACE = /^\s$/u;
const FIELD_CHAR = /^[A-Za-z0-9_]$/;
const VALUE_CHAR = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

class Scanner {
  private readonly chars: string[];
  private pos = 0;
  /** After an operator the next bare word is a value, not a field. */
  private expectValue = false;
  error = '';

  constructor(input: string) {
    this.chars = [...input];
  }

  /** Index (in code points) of the next character. */
  get offset(): number {
    return this.pos;
  }

  /** The next character, without skipping spaces; undefined at the end. */
  peek(): string | undefined {
    return this.chars[this.pos];
  }

  scan(): Token {
    while (this.pos < this.chars.length && SPACE.test(this.chars[this.pos]!)) this.pos++;
    const start = this.pos;
    const ch = this.chars[this.pos];
    if (ch === undefined) return { kind: 'eof', pos: start, text: '' };
    this.pos++;
    if (ch === '\0') {
      this.fail('unexpected null');
      return { kind: 'illegal', pos: start, text: ch };
    }
    if (QUOTES.has(ch)) {
      const ok = this.scanQuoted(ch);
      return { kind: ok ? 'quoted' : 'illegal', pos: start, text: this.text(start) };
    }
    if (SEPARATORS.has(ch)) {
      this.expectValue = false;
      return { kind: 'separator', pos: start, text: ch };
    }
    if (OPERATOR_CHARS.has(ch)) {
      while (OPERATOR_CHARS.has(this.chars[this.pos] ?? '')) this.pos++;
      this.expectValue = true;
      return { kind: 'operator', pos: start, text: this.text(start) };
    }
    if (this.expectValue) {
      while (isValueChar(this.chars[this.pos])) this.pos++;
      this.expectValue = false;
      return { kind: 'value', pos: start, text: this.text(start) };
    }
    if (FIELD_CHAR.test(ch)) {
      while (FIELD_CHAR.test(this.chars[this.pos] ?? '')) this.pos++;
      return { kind: 'field', pos: start, text: this.text(start) };
    }
    return { kind: 'other', pos: start, text: ch };
  }

  private text(start: number): string {
    return this.chars.slice(start, this.pos).join('');
  }

  private fail(message: string): void {
    if (this.error === '') this.error = message;
  }

  /** Consumes up to and including the closing quote; false if the literal is malformed. */
  private scanQuoted(quote: string): boolean {
    let legal = true;
    for (;;) {
      const ch = this.chars[this.pos++];
      if (ch === undefined || ch === '\n') {
        this.fail('quoted literal not terminated');
        return false;
      }
      if (ch === quote) return legal;
      if (ch === '\\' && !this.scanEscape(quote)) legal = false;
    }
  }

  private scanEscape(quote: string): boolean {
    const ch = this.chars[this.pos];
    if (ch === undefined) return false;
    if ('abfnrtv\\'.includes(ch) || ch === quote) {
      this.pos++;
      return true;
    }
    const digits = /^[0-7]$/.test(ch) ? { base: 8, n: 3 } : ESCAPE_DIGITS[ch];
    if (digits === undefined) {
      this.fail('illegal escape sequence');
      return false;
    }
    if (digits.base === 16) this.pos++;
    for (let i = 0; i < digits.n; i++) {
      const d = this.chars[this.pos];
      if (d === undefined || !(parseInt(d, 16) < digits.base)) {
        this.fail('illegal numeric escape sequence');
        return false;
      }
      this.pos++;
    }
    return true;
  }
}

const ESCAPE_DIGITS: Record<string, { base: number; n: number }> = {
  x: { base: 16, n: 2 },
  u: { base: 16, n: 4 },
  U: { base: 16, n: 8 },
};

function isValueChar(ch: string | undefined): boolean {
  return ch !== undefined && ch !== ',' && !SPACE.test(ch) && VALUE_CHAR.test(ch);
}

// ---- parser ----------------------------------------------------------------

class Parser {
  private readonly scanner: Scanner;

  constructor(private readonly input: string) {
    this.scanner = new Scanner(input);
  }

  parse(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      const next = this.scanner.peek();
      if (next === undefined) return selectors;
      if (next !== ',') throw this.error(this.scanner.offset, `unexpected input: ${next}`);
      this.scanner.scan();
      selectors.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const next = this.scanner.peek();
    if (next === undefined || next === ',') return { fieldpath, operator: 'present', value: '', pattern: undefined };
    const operator = this.operator();
    const value = this.value(operator === '~=');
    return { fieldpath, operator, value, pattern: operator === '~=' ? this.compile(value) : undefined };
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.scanner.peek() === '.') {
      this.scanner.scan();
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const tok = this.scanner.scan();
    switch (tok.kind) {
      case 'field':
        return tok.text;
      case 'quoted':
        return this.unquote(tok, false);
      case 'illegal':
        throw this.error(tok.pos, this.scanner.error);
      default:
        throw this.error(tok.pos, 'expected field or quoted');
    }
  }

  private operator(): Operator {
    const tok = this.scanner.scan();
    if (tok.kind === 'illegal') throw this.error(tok.pos, this.scanner.error);
    if (tok.kind !== 'operator') throw this.error(tok.pos, 'expected an operator ("=="|"!="|"~=")');
    if (tok.text === '==' || tok.text === '!=' || tok.text === '~=') return tok.text;
    throw this.error(tok.pos, `unsupported operator ${JSON.stringify(tok.text)}`);
  }

  private value(allowAltQuotes: boolean): string {
    const tok = this.scanner.scan();
    switch (tok.kind) {
      case 'value':
      case 'field':
        return tok.text;
      case 'quoted':
        return this.unquote(tok, allowAltQuotes);
      case 'illegal':
        throw this.error(tok.pos, this.scanner.error);
      default:
        throw this.error(tok.pos, 'expected value or quoted');
    }
  }

  private unquote(tok: Token, allowAltQuotes: boolean): string {
    if (!allowAltQuotes && !tok.text.startsWith('"')) throw this.error(tok.pos, 'invalid quote encountered');
    const value = unquote(tok.text);
    if (value === undefined) throw this.error(tok.pos, 'unquoting failed');
    return value;
  }

  private compile(source: string): RegExp {
    const inline = /^\(\?([imsU]+)\)/.exec(source);
    const flags = new Set(['u']);
    let body = source;
    if (inline && !inline[1]!.includes('U')) {
      for (const f of inline[1]!) flags.add(f);
      body = source.slice(inline[0].length);
    }
    try {
      return new RegExp(body, [...flags].join(''));
    } catch (err) {
      throw new InvalidArgumentError(`filter ${JSON.stringify(this.input)}: invalid regular expression ${JSON.stringify(source)}`, {
        hint: 'use RE2/JavaScript-compatible syntax for the value of ~=',
        cause: err,
      });
    }
  }

  private error(pos: number, message: string): InvalidArgumentError {
    const chars = [...this.input];
    const where =
      pos < chars.length
        ? `${chars.slice(0, pos).join('')} >|${chars[pos]}|< ${chars.slice(pos + 1).join('')}`
        : this.input;
    return new InvalidArgumentError(`invalid filter [${where}]: ${message}`, { hint: SYNTAX_HINT });
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};

/** Go-style unquoting with ", / or | as the delimiter; undefined if malformed. */
function unquote(raw: string): string | undefined {
  const quote = raw[0]!;
  if (raw.length < 2 || raw[raw.length - 1] !== quote) return undefined;
  const body = raw.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === quote || c === '\n') return undefined;
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) return undefined;
    i += 2;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
    } else if (e === quote) {
      out += e;
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(hex)) return undefined;
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) return undefined;
      out += String.fromCodePoint(code);
      i += n;
    } else if (/^[0-7]$/.test(e)) {
      const oct = e + body.slice(i, i + 2);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const code = parseInt(oct, 8);
      if (code > 255) return undefined;
      out += String.fromCharCode(code);
      i += 2;
    } else {
      return undefined;
    }
  }
  return out;
}
