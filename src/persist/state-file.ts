// StateFile: one file of the data dir, read whole and replaced atomically (temp file, fsync, rename, directory fsync).
import { dirname } from 'node:path';
import { StateFileError } from '../errors.js';
import { MAX_STATE_BODY, STATE_FILE_OVERHEAD } from '../wire/state-file.js';
import { nodeFileSystem, type FileSystem } from './file-system.js';

/** What an errno means for someone who has to fix it. */
export function describeIoError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC): free some space there';
    case 'EDQUOT':
      return 'disk quota exceeded (EDQUOT): free some space or raise the quota';
    case 'EROFS':
      return 'the file system is read-only (EROFS)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code}): check the owner and mode of the data dir`;
    case 'EIO':
      return 'input/output error (EIO): check the disk';
    case 'ENOTDIR':
      return 'a part of the path is not a directory (ENOTDIR)';
    case 'EISDIR':
      return 'the path is a directory (EISDIR)';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

/**
 * One state file. Writes go to `PATH.tmp` (mode 0600), are fsynced, renamed over `PATH`, and the
 * directory is fsynced: a reader or a crash sees the old file or the new one, never a mixture. Every
 * failure is a {@link StateFileError} naming the file.
 */
export class StateFile {
  private writing: Promise<void> = Promise.resolve();

  constructor(
    /** Where the file lives. */
    readonly path: string,
    /** What it holds, for messages ("IPAM state", "endpoint registry"). */
    readonly what: string,
    private readonly fs: FileSystem = nodeFileSystem,
  ) {}

  /** The file's bytes, or undefined when it does not exist. */
  async read(): Promise<Uint8Array | undefined> {
    let bytes: Uint8Array;
    try {
      bytes = await this.fs.readFile(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StateFileError('read-failed', `cannot read ${this.what} ${this.path}: ${describeIoError(error)}`, { cause: error });
    }
    if (bytes.byteLength > MAX_STATE_BODY + STATE_FILE_OVERHEAD) {
      throw this.corrupt(new RangeError(`${bytes.byteLength} bytes is more than any ${this.what} holds`), 'move it away');
    }
    return bytes;
  }

  /** Replaces the file with `bytes`; writes are serialised, and a failed write leaves the old file in place. */
  write(bytes: Uint8Array): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => this.replace(bytes));
    this.writing = next;
    return next;
  }

  /** The error for a file whose contents cannot be used; `advice` says what the operator can do. */
  corrupt(cause: unknown, advice: string): StateFileError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new StateFileError('corrupt-state', `${this.what} ${this.path} is corrupt (${reason}): ${advice}`, { cause });
  }

  private async replace(bytes: Uint8Array): Promise<void> {
    const temporary = `${this.path}.tmp`;
    const dir = dirname(this.path);
    try {
      await this.fs.mkdir(dir, 0o700);
      await this.fs.writeFile(temporary, bytes, 0o600);
      await this.fs.rename(temporary, this.path);
    } catch (error) {
      await this.fs.remove(temporary).catch(() => undefined);
      throw new StateFileError('write-failed', `cannot write ${this.what} ${this.path}: ${describeIoError(error)}`, { cause: error });
    }
    try {
      // The rename is only durable once the directory entry is on disk too.
      await this.fs.syncDirectory(dir);
    } catch (error) {
      throw new StateFileError('write-failed', `cannot sync the directory of ${this.what} ${this.path}: ${describeIoError(error)}`, { cause: error });
    }
  }
}
