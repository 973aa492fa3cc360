// Option helpers: optional fields take `undefined` as "not given", so values read from the environment pass as they are.

/** `T` with every field optional, where `undefined` means "use the default" (as for every option of this library). */
export type Overrides<T> = { [K in keyof T]?: T[K] | undefined };

/** `defaults` with the fields of `overrides` that are not undefined laid over them. */
export function withDefaults<T extends object>(defaults: T, overrides: Overrides<T> | undefined): T {
  const out = { ...defaults };
  if (overrides === undefined) return out;
  for (const key of Object.keys(overrides) as (keyof T)[]) {
    const value = overrides[key];
    if (value !== undefined) out[key] = value as T[keyof T];
  }
  return out;
}
