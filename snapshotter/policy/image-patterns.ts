/**
 * Image-name patterns from the configuration (`rootfs.protected_images`):
 * which images get a read-only root filesystem. A pattern is matched against
 * the names containerd keeps for an image (`registry.example/team/app:1.0`,
 * `registry.example/team/app@sha256:…`):
 *
 *   `*`  any run of characters, `/` included — so `registry.example/d8/*`
 *        also covers nested repositories (a protection pattern errs on the
 *        side of protecting);
 *   `?`  exactly one character;
 *   anything else stands for itself.
 *
 * A pattern matches a name when it matches all of it, or all of its
 * repository (the name without `:tag` and `@digest`): `registry.example/app`
 * covers every tag and digest of that repository.
 */
export class ImagePatterns {
  readonly patterns: readonly string[];
  private readonly compiled: readonly RegExp[];

  /** Patterns as the configuration checked them (core/config.ts: none empty, no white space). */
  constructor(patterns: readonly string[]) {
    this.patterns = [...patterns];
    this.compiled = patterns.map(compile);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** The first pattern that covers `name`, or undefined. */
  match(name: string): string | undefined {
    const repository = repositoryOf(name);
    const i = this.compiled.findIndex((re) => re.test(name) || re.test(repository));
    return i < 0 ? undefined : this.patterns[i];
  }
}

function compile(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, 's');
}

/**
 * `name` without `@digest` and without a `:tag` after the last `/` (a colon
 * before it belongs to a registry port: `localhost:5000/app`).
 */
export function repositoryOf(name: string): string {
  const at = name.indexOf('@');
  const withoutDigest = at < 0 ? name : name.slice(0, at);
  const colon = withoutDigest.lastIndexOf(':');
  return colon > withoutDigest.lastIndexOf('/') ? withoutDigest.slice(0, colon) : withoutDigest;
}
