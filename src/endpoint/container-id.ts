// Container ids, as a container runtime (CNI) names the containers it attaches.
import { OptionsError } from '../errors.js';

/** Longest container id accepted (Kubernetes and containerd use 64 hex digits; ctr takes what it is given). */
export const MAX_CONTAINER_ID_CHARS = 256;

/**
 * True for a CNI container id: an alphanumeric first character, then alphanumerics, `_`, `.` and `-`
 * (the CNI specification's rule), at most {@link MAX_CONTAINER_ID_CHARS} characters.
 */
export function isValidContainerId(id: string): boolean {
  return typeof id === 'string' && id.length <= MAX_CONTAINER_ID_CHARS && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id);
}

/** Throws an OptionsError that says what is wrong with a container id. */
export function validateContainerId(id: string): void {
  if (isValidContainerId(id)) return;
  const shown = JSON.stringify(typeof id === 'string' && id.length > 40 ? `${id.slice(0, 40)}…` : id);
  throw new OptionsError(
    `container id ${shown} is not valid: use 1 to ${MAX_CONTAINER_ID_CHARS} letters, digits, "_", "." and "-", starting with a letter or digit`,
  );
}
