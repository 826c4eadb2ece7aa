/**
 * The kernel image qemu loads. A distro bzImage decompresses itself, which
 * under TCG takes about 3 s of every boot (Debian's is xz). When the kernel
 * supports PVH boot (CONFIG_PVH: an ELF note qemu looks for), qemu can load
 * the uncompressed ELF directly, so we decompress the bzImage's payload once
 * on the host and cache it. Otherwise the bzImage is booted as is.
 *
 * bzImage layout (Documentation/arch/x86/boot.rst): the real-mode setup is
 * (setup_sects + 1) * 512 bytes; payload_offset and payload_length in the
 * setup header locate the compressed vmlinux inside the protected-mode part,
 * and the build appends the uncompressed size (4 bytes) to the payload.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { cachePath, writeCacheFile } from './cache.js';
import type { GuestKernel } from './kernel.js';

const SETUP_SECTS = 0x1f1;
const HEADER_MAGIC = 0x202; // "HdrS"
const HEADER_VERSION = 0x206;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point qemu jumps to. */
const PVH_NOTE_TYPE = 18;

export interface BootImage {
  path: string;
  /** Why the slower self-decompressing bzImage is used, when it is. */
  fallbackReason?: string;
}

/** The fastest image of `kernel` that qemu can boot: a cached PVH vmlinux, else the bzImage. */
export function ensureBootImage(kernel: GuestKernel): BootImage {
  const st = statSync(kernel.image);
  const target = cachePath(`vmlinux-${kernel.version}-${st.size}-${Math.trunc(st.mtimeMs)}`);
  if (existsSync(target)) return { path: target };

  const extracted = extractVmlinux(readFileSync(kernel.image));
  if ('reason' in extracted) return { path: kernel.image, fallbackReason: extracted.reason };
  if (!hasPvhNote(extracted.elf)) return { path: kernel.image, fallbackReason: 'the kernel has no PVH entry (CONFIG_PVH)' };

  writeCacheFile(target, extracted.elf);
  return { path: target };
}

/** The uncompressed vmlinux ELF inside a bzImage, or why it cannot be had. */
export function extractVmlinux(bzImage: Buffer): { elf: Buffer } | { reason: string } {
  if (bzImage.length < 0x250 || bzImage.toString('latin1', HEADER_MAGIC, HEADER_MAGIC + 4) !== 'HdrS') {
    return { reason: 'not a bzImage' };
  }
  if (bzImage.readUInt16LE(HEADER_VERSION) < 0x208) return { reason: 'boot protocol older than 2.08 has no payload fields' };
  const setupSects = bzImage[SETUP_SECTS] || 4; // 0 means 4, for old loaders
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(PAYLOAD_OFFSET);
  const length = bzImage.readUInt32LE(PAYLOAD_LENGTH);
  if (length < 4 || start + length > bzImage.length) return { reason: 'payload outside the image' };
  const payload = bzImage.subarray(start, start + length - 4); // without the appended size
  const tool = decompressorFor(payload);
  if (!tool) return { reason: `unsupported payload compression (magic ${payload.subarray(0, 4).toString('hex')})` };
  let elf: Buffer;
  try {
    elf = tool === 'gzip' ? gunzipSync(payload) : execFileSync(tool, ['-dc'], { input: payload, maxBuffer: 1 << 30 });
  } catch (err) {
    return { reason: `${tool} could not decompress the payload: ${(err as Error).message}` };
  }
  if (elf.readUInt32BE(0) !== 0x7f454c46) return { reason: 'the payload is not an ELF file' };
  return { elf };
}

function decompressorFor(payload: Buffer): 'gzip' | 'xz' | 'zstd' | undefined {
  if (payload[0] === 0x1f && payload[1] === 0x8b) return 'gzip';
  if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (payload.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return undefined;
}

/** True if a 64-bit little-endian ELF has a "Xen" note of type PHYS32_ENTRY in a PT_NOTE segment. */
export function hasPvhNote(elf: Buffer): boolean {
  const PT_NOTE = 4;
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const phnum = elf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== PT_NOTE) continue;
    let at = Number(elf.readBigUInt64LE(ph + 8));
    const end = at + Number(elf.readBigUInt64LE(ph + 32));
    while (at + 12 <= end) {
      const nameSize = elf.readUInt32LE(at);
      const descSize = elf.readUInt32LE(at + 4);
      const type = elf.readUInt32LE(at + 8);
      const name = elf.toString('latin1', at + 12, at + 12 + nameSize).replace(/\0+$/, '');
      if (name === 'Xen' && type === PVH_NOTE_TYPE) return true;
      at += 12 + align4(nameSize) + align4(descSize);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
