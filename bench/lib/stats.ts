// Small statistics and table formatting for benchmark reports.

/** Median of the finite values (mean of the middle two for an even count); NaN when there are none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** Left-aligns the first column and right-aligns the others. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A number with `digits` decimals, or '-' for null/NaN. */
export function fmt(value: number | null, digits = 0): string {
  return value === null || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/** value / reference as '0.42×', or '-' when either is missing. */
export function ratio(value: number | null, reference: number | null): string {
  if (value === null || reference === null || !Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return '-';
  return `${(value / reference).toFixed(2)}×`;
}

/** A numeric benchmark setting from the environment (positive; zero too when `zeroOk`), else `fallback`. */
export function envNumber(name: string, fallback: number, zeroOk = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroOk)) {
    throw new Error(`${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number, got '${raw}'`);
  }
  return value;
}
