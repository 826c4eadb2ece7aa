/**
 * How containerd's metadata layer names what it keeps in a backend
 * snapshotter (a proxy one included): every key and name becomes
 * `<namespace>/<sequence>/<key or name>` (metadata/snapshot.go createKey,
 * containerd 1.6), so backend keys are unique across namespaces and say
 * which namespace they belong to.
 */
const BACKEND_KEY = /^([^/]+)\/([0-9]+)\/(.*)$/s;

/** The namespace a backend key names, if it has containerd's form. */
export function backendNamespace(key: string): string | undefined {
  return BACKEND_KEY.exec(key)?.[1];
}

/** The client's own key or name inside a backend key (the whole string if it has no prefix). */
export function clientKey(key: string): string {
  return BACKEND_KEY.exec(key)?.[3] ?? key;
}

/** `name` under the same `<namespace>/<sequence>/` prefix as `key` (just `name` if `key` has none). */
export function besideKey(key: string, name: string): string {
  const m = BACKEND_KEY.exec(key);
  return m ? `${m[1]}/${m[2]}/${name}` : name;
}
