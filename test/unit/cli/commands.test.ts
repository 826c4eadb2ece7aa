/** The command registry loads only what an invocation needs, and everything for help. */
import test from 'ava';
import { Command } from 'commander';
import { commands, loadCommands } from '../../../snapshotter/cli/commands.js';

async function registered(args: string[]): Promise<string[]> {
  const program = new Command('integrityctl');
  for (const register of await loadCommands(args)) register(program);
  return program.commands.flatMap((group) =>
    group.commands.length > 0 ? group.commands.map((c) => `${group.name()} ${c.name()}`) : [group.name()],
  );
}

const everything = commands.map((entry) => entry.path.join(' ')).sort();

test('one command is loaded for its own invocation', async (t) => {
  t.deepEqual(await registered(['layer', 'convert', 'x.tar', '-o', 'x.erofs']), ['layer convert']);
  t.deepEqual(await registered(['status', '--json']), ['status']);
});

test('a group is loaded whole for its help', async (t) => {
  t.deepEqual((await registered(['layer', '--help'])).sort(), ['layer convert', 'layer mount', 'layer umount', 'layer verity']);
});

test('top-level help and unknown words load every command', async (t) => {
  t.deepEqual((await registered([])).sort(), everything);
  t.deepEqual((await registered(['--help'])).sort(), everything);
  t.deepEqual((await registered(['frob'])).sort(), everything);
});

test('every entry registers the command its path names', async (t) => {
  for (const entry of commands) {
    t.deepEqual(await registered([...entry.path]), [entry.path.join(' ')]);
  }
});
