// FileSystem: the few file operations state files need, injectable so tests can fail any step (ENOSPC, EIO, a crash).
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';

/**
 * File operations of the data dir. Failures are Node-style errors carrying an errno `code` (`ENOENT`,
 * `ENOSPC`, …); `readFile` of a missing file must fail with `ENOENT`.
 */
export interface FileSystem {
  /** The whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Creates or truncates `path`, writes all of `data`, fsyncs and closes it. */
  writeFile(path: string, data: Uint8Array, mode: number): Promise<void>;
  /** Renames `from` over `to` atomically. */
  rename(from: string, to: string): Promise<void>;
  /** Fsyncs a directory, so a rename in it survives a power loss. */
  syncDirectory(path: string): Promise<void>;
  /** Creates a directory and its parents (an existing one is fine). */
  mkdir(path: string, mode: number): Promise<void>;
  /** Removes a file; a missing one is fine. */
  remove(path: string): Promise<void>;
}

/** The real file system (node:fs). */
export const nodeFileSystem: FileSystem = {
  readFile: (path) => readFile(path),
  async writeFile(path, data, mode) {
    const file = await open(path, 'w', mode);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
  },
  rename: (from, to) => rename(from, to),
  async syncDirectory(path) {
    const dir = await open(path, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  },
  async mkdir(path, mode) {
    await mkdir(path, { recursive: true, mode });
  },
  remove: (path) => rm(path, { force: true }),
};
