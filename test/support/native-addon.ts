/** The skip reason every host test that needs the native addon shares. */
import { loadNative } from '../../snapshotter/native/loader.js';

/** Why the native addon cannot be loaded here (not built, wrong ABI), or undefined. */
export function nativeAddonMissing(): string | undefined {
  try {
    loadNative();
    return undefined;
  } catch (err) {
    return `native addon: ${(err as Error).message}`;
  }
}
