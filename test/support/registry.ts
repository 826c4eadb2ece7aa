/**
 * A real OCI registry for tests (Debian's `docker-registry`, distribution
 * 2.8) on a free 127.0.0.1 port with temp storage and no auth, so CRI
 * PullImage runs the way it does on a node: containerd resolves, fetches
 * and unpacks with the `containerd.io/snapshot/cri.*` labels that
 * `ctr image import` never passes. Images go in with skopeo.
 *
 *   const registry = await Registry.start();
 *   t.teardown(() => registry.stop());
 *   const ref = await registry.push(`${layoutDir}:busybox`, 'test/busybox:v1');  // 127.0.0.1:<port>/test/busybox:v1
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingPrograms, runCommand } from './command.js';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';
export const SKOPEO = '/usr/bin/skopeo';

/** Why a test registry cannot run here, or undefined when it can. */
export function registrySkipReason(): string | undefined {
  return missingPrograms({ [DOCKER_REGISTRY]: 'docker-registry', [SKOPEO]: 'skopeo' });
}

export class Registry {
  readonly dir: string;
  /** `127.0.0.1:<port>`, the registry host in image references. */
  readonly host: string;
  /** `http://127.0.0.1:<port>`, the endpoint for containerd's hosts.toml. */
  readonly url: string;
  readonly logFile: string;
  readonly #child: ChildProcess;
  #exited = false;

  private constructor(dir: string, port: number, child: ChildProcess) {
    this.dir = dir;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.logFile = join(dir, 'registry.log');
    this.#child = child;
    // 'error' is a spawn failure: there is no process to wait for either.
    for (const event of ['exit', 'error'] as const) {
      child.on(event, () => {
        this.#exited = true;
      });
    }
  }

  /** Starts a registry and resolves once `/v2/` answers. A port taken in the meantime is retried. */
  static async start(options: { startTimeoutMs?: number } = {}): Promise<Registry> {
    const reason = registrySkipReason();
    if (reason) throw new Error(`cannot start a registry: ${reason}`);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const dir = await mkdtemp('/tmp/registry-');
      const port = await freePort();
      await writeFile(join(dir, 'config.yml'), registryConfig(join(dir, 'storage'), port));
      const log = openSync(join(dir, 'registry.log'), 'a');
      let child: ChildProcess;
      try {
        child = spawn(DOCKER_REGISTRY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
      } finally {
        closeSync(log);
      }
      const registry = new Registry(dir, port, child);
      try {
        await registry.#waitReady(options.startTimeoutMs ?? 10_000);
        return registry;
      } catch (err) {
        lastError = err;
        await registry.stop();
      }
    }
    throw lastError;
  }

  /**
   * Copies `source` (skopeo syntax without transport: an OCI layout
   * `<dir>:<tag>`) to `<host>/<repository>` over plain HTTP, keeping the
   * manifest byte for byte (so its digest, and any signature over it, holds).
   * Returns the pushed reference.
   */
  async push(source: string, repository: string): Promise<string> {
    const reference = `${this.host}/${repository}`;
    await runCommand(SKOPEO, [
      '--insecure-policy', 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false',
      `oci:${source}`, `docker://${reference}`,
    ], { timeoutMs: 120_000 });
    return reference;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no registry log)';
    }
  }

  async stop(): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise((resolve) => this.#child.once('exit', resolve));
      this.#child.kill('SIGKILL');
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  async #waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#exited) throw new Error(`docker-registry exited during startup:\n${this.logTail()}`);
      try {
        const response = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(1_000) });
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${this.url} within ${timeoutMs} ms:\n${this.logTail()}`);
      await sleep(50);
    }
  }
}

/** distribution's YAML config: loopback only, filesystem storage, deletes allowed, no auth, quiet. */
function registryConfig(storage: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storage)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
}

/** A port the kernel just handed out on 127.0.0.1; someone may take it before we bind, hence start()'s retry. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
