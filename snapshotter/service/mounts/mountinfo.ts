/**
 * /proc/self/mountinfo (proc(5)): one mount per line,
 * `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`,
 * with space, tab, newline and backslash in paths written as \ooo octal.
 */

import { readFile } from 'node:fs/promises';

export interface MountInfoEntry {
  id: number;
  parentId: number;
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** The mounts this process sees now. */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    entries.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      root: unescapeOctal(fields[3]!),
      mountPoint: unescapeOctal(fields[4]!),
      fsType: fields[dash + 1]!,
      source: unescapeOctal(fields[dash + 2]!),
      superOptions: fields[dash + 3] ?? '',
    });
  }
  return entries;
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
