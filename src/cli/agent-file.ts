// `DATA_DIR/agent.json`: where a running agent's API listens and its pid, so commands given only the
// data dir find it, and `reset` can tell whether it still runs.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Name of the file in the data dir. */
export const AGENT_FILE = 'agent.json';

/** What a running agent records. */
export interface AgentRecord {
  pid: number;
  /** The bound API address, `host:port`. */
  api: string;
}

/** Writes the record (0600, like the token beside it). */
export async function writeAgentRecord(dataDir: string, record: AgentRecord): Promise<void> {
  await writeFile(join(dataDir, AGENT_FILE), `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

/** Removes the record at a clean stop; a missing file is fine. */
export async function removeAgentRecord(dataDir: string): Promise<void> {
  await rm(join(dataDir, AGENT_FILE), { force: true });
}

/** Parses the file's text; undefined for anything that is not a record (a damaged file is as good as none). */
export function parseAgentRecord(text: string): AgentRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { pid, api } = value as { pid?: unknown; api?: unknown };
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || typeof api !== 'string' || api.length === 0 || api.length > 300) return undefined;
  return { pid, api };
}

/** The record of an agent whose process is alive; undefined when there is none or its process is gone (killed -9). */
export async function runningAgent(dataDir: string, alive: (pid: number) => boolean = processAlive): Promise<AgentRecord | undefined> {
  const text = await readFile(join(dataDir, AGENT_FILE), 'utf8').catch(() => undefined);
  const record = text === undefined ? undefined : parseAgentRecord(text);
  return record && alive(record.pid) ? record : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}
