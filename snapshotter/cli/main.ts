#!/usr/bin/env node
/**
 * integrityctl: one CLI in front of every component. This file only wires the
 * command files together; each command lives in its own file.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadCommands } from './commands.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('integrityctl')
  .description('Integrity control for containerd nodes: EROFS layers, dm-verity, signed images')
  .version(pkg.version)
  .showHelpAfterError()
  .enablePositionalOptions();

for (const register of await loadCommands(process.argv.slice(2))) register(program);

await program.parseAsync(process.argv);
