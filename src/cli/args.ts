// Command-line parsing: `--flag value`, `--flag=value`, repeatable and boolean flags, positionals; pure.
// Messages do not name the command: the caller prints them after `COMMAND: `.
import { OptionsError } from '../errors.js';

/** What a command accepts. */
export interface FlagSpec {
  /** Flags taking a value; `repeat` ones collect every occurrence. */
  values?: Record<string, { repeat?: boolean }>;
  /** Flags without a value. */
  booleans?: readonly string[];
  /** Names of positional arguments, for messages; `min`/`max` bound how many. */
  positionals?: { names: readonly string[]; min: number; max: number };
}

/** Parsed arguments. */
export interface ParsedArgs {
  values: Map<string, string[]>;
  booleans: Set<string>;
  positionals: string[];
}

/** True when `argv` asks for help (`--help` or `-h` anywhere before `--`), whatever else it holds. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}

/** Parses `argv` (after the command word) against `spec`; unknown or malformed flags are an OptionsError. */
export function parseArgs(command: string, argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const values = new Map<string, string[]>();
  const booleans = new Set<string>();
  const positionals: string[] = [];
  const valueFlags = spec.values ?? {};
  const booleanFlags = new Set(spec.booleans ?? []);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    if (booleanFlags.has(flag)) {
      if (eq >= 0) throw new OptionsError(`--${flag} takes no value`);
      booleans.add(flag);
      continue;
    }
    const valueSpec = valueFlags[flag];
    if (!valueSpec) throw new OptionsError(`unknown option ${arg.slice(0, eq < 0 ? arg.length : eq)} (see weave-ts ${command} --help)`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new OptionsError(`--${flag} needs a value`);
      i += 1;
    }
    const list = values.get(flag) ?? [];
    if (list.length > 0 && !valueSpec.repeat) throw new OptionsError(`--${flag} given more than once`);
    list.push(value);
    values.set(flag, list);
  }
  const p = spec.positionals ?? { names: [], min: 0, max: 0 };
  if (positionals.length < p.min) {
    throw new OptionsError(`missing ${p.names.slice(positionals.length, p.min).map((n) => n.toUpperCase()).join(' ')}`);
  }
  if (positionals.length > p.max) throw new OptionsError(`unexpected argument "${positionals[p.max]}"`);
  return { values, booleans, positionals };
}

/** The single value of a flag, or undefined. */
export function flag(args: ParsedArgs, name: string): string | undefined {
  return args.values.get(name)?.[0];
}

/** A required flag's value. */
export function requiredFlag(command: string, args: ParsedArgs, name: string): string {
  const value = flag(args, name);
  if (value === undefined || value.length === 0) throw new OptionsError(`--${name} is required (see weave-ts ${command} --help)`);
  return value;
}
