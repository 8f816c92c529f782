// Reads dataset files (JSONL or Parquet) into plain records, and looks fields up by dotted path
// with errors that name the file, the 1-based row and the missing key. Parquet is read whole
// (datasets here are at most tens of MB); JSONL can also be streamed line by line.
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { fail, RedError } from '../util/errors.ts';

export type DataRecord = Record<string, unknown>;
export type RecordFormat = 'jsonl' | 'parquet';
export type OnBadRow = 'error' | 'skip';

export interface ReadRecordsOptions {
  /** What to do with a row that is not a JSON object: stop with an error (default) or skip it. */
  onBadRow?: OnBadRow;
  /** Rows longer than this many bytes (as JSON) are skipped unread and counted (default: no limit). */
  maxRowBytes?: number;
}

/** Why rows were skipped: malformed (only with onBadRow 'skip'), not UTF-8, over maxRowBytes. */
export interface SkippedRows {
  malformed: number;
  nonUtf8: number;
  tooLarge: number;
}

export interface ReadRecordsResult {
  records: DataRecord[];
  /** 1-based row number (line number for JSONL) of each record, parallel to `records`. */
  rows: number[];
  /** How many rows were skipped, in all (= the sum of `skippedBy`). */
  skipped: number;
  skippedBy: SkippedRows;
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The format of a dataset file, from its extension (`.jsonl`, `.json` lines, `.parquet`). */
export function recordFormat(file: string): RecordFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  return fail(`${file}: unknown dataset format '${ext || '(no extension)'}'; expected .jsonl or .parquet`);
}

/** Every record of a JSONL or Parquet file. Malformed JSONL rows throw (or are skipped). */
export async function readRecords(file: string, options: ReadRecordsOptions = {}): Promise<DataRecord[]> {
  return (await readRecordsDetailed(file, options)).records;
}

/** Like readRecords, also returning each record's row number and the number of skipped rows. */
export async function readRecordsDetailed(file: string, options: ReadRecordsOptions = {}): Promise<ReadRecordsResult> {
  const format = recordFormat(file);
  await assertReadable(file);
  const out: ReadRecordsResult = {
    records: [],
    rows: [],
    skipped: 0,
    skippedBy: { malformed: 0, nonUtf8: 0, tooLarge: 0 },
  };
  const maxRowBytes = options.maxRowBytes ?? Infinity;
  const skip = (why: keyof SkippedRows) => {
    out.skippedBy[why]++;
    out.skipped++;
  };
  switch (format) {
    case 'jsonl': {
      let bytes = await readFile(file);
      if (bytes.subarray(0, 3).equals(UTF8_BOM)) bytes = bytes.subarray(3); // a BOM is not part of row 1
      // Row by row on the bytes: an oversized row is skipped unread, a non-UTF-8 one before it is
      // decoded (decoding would turn its bad bytes into U+FFFD silently).
      for (let start = 0, row = 1; start < bytes.length; row++) {
        const nl = bytes.indexOf(0x0a, start);
        const end = nl === -1 ? bytes.length : nl;
        const line = bytes.subarray(start, end);
        start = end + 1;
        if (line.length > maxRowBytes) skip('tooLarge');
        else if (!isUtf8(line)) skip('nonUtf8');
        else {
          const parsed = parseJsonlLine(file, row, line.toString('utf8'), options.onBadRow ?? 'error');
          if (parsed === 'skipped') skip('malformed');
          else if (parsed !== 'blank') {
            out.records.push(parsed);
            out.rows.push(row);
          }
        }
      }
      return out;
    }
    case 'parquet': {
      const records = await readParquet(file);
      for (let i = 0; i < records.length; i++) {
        if (
          maxRowBytes !== Infinity &&
          Buffer.byteLength(
            JSON.stringify(records[i], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
          ) > maxRowBytes
        ) {
          skip('tooLarge');
          continue;
        }
        out.records.push(records[i]);
        out.rows.push(i + 1);
      }
      return out;
    }
    default:
      return format satisfies never;
  }
}

/**
 * Streams records one at a time with their 1-based row number, so a large JSONL file is never
 * held whole. Parquet is columnar, so it is decoded whole and then yielded row by row.
 */
export async function* streamRecords(
  file: string,
  options: ReadRecordsOptions = {},
): AsyncGenerator<{ record: DataRecord; row: number }> {
  const format = recordFormat(file);
  await assertReadable(file);
  switch (format) {
    case 'jsonl': {
      const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
      let row = 0;
      for await (const line of lines) {
        row++;
        const text = row === 1 && line.startsWith('\uFEFF') ? line.slice(1) : line;
        const parsed = parseJsonlLine(file, row, text, options.onBadRow ?? 'error');
        if (parsed !== 'blank' && parsed !== 'skipped') yield { record: parsed, row };
      }
      return;
    }
    case 'parquet': {
      const records = await readParquet(file);
      for (let i = 0; i < records.length; i++) yield { record: records[i], row: i + 1 };
      return;
    }
    default:
      return format satisfies never;
  }
}

function parseJsonlLine(file: string, row: number, line: string, onBadRow: OnBadRow): DataRecord | 'blank' | 'skipped' {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (text.trim() === '') return 'blank';
  let value: unknown;
  let problem: string;
  try {
    value = JSON.parse(text);
    if (isRecord(value)) return value;
    problem = `expected a JSON object, got ${describe(value)}`;
  } catch (err) {
    problem = `malformed JSON (${(err as Error).message})`;
  }
  if (onBadRow === 'skip') return 'skipped';
  return fail(`${file}: row ${row}: ${problem}`);
}

async function readParquet(file: string): Promise<DataRecord[]> {
  const bytes = await readFile(file);
  // hyparquet wants an ArrayBuffer of exactly the file; a Node Buffer may share a larger pool.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    const rows = await parquetReadObjects({ file: buffer, compressors });
    return rows.map((r) => normaliseParquetValue(r) as DataRecord);
  } catch (err) {
    if (err instanceof RedError) throw err;
    return fail(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
}

/** Parquet int64 arrives as bigint; JSON-like consumers want numbers (exact below 2^53). */
function normaliseParquetValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (Array.isArray(value)) return value.map(normaliseParquetValue);
  if (value instanceof Date || value instanceof Uint8Array) return value;
  if (isRecord(value)) {
    const out: DataRecord = {};
    for (const [k, v] of Object.entries(value)) out[k] = normaliseParquetValue(v);
    return out;
  }
  return value;
}

async function assertReadable(file: string): Promise<void> {
  try {
    const s = await stat(file);
    if (!s.isFile()) fail(`${file}: not a file`);
  } catch (err) {
    if (err instanceof RedError) throw err;
    fail(`${file}: cannot read dataset file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function isRecord(value: unknown): value is DataRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return value.length > 40 ? `a string "${value.slice(0, 37)}..."` : `a string "${value}"`;
  return `${typeof value} ${typeof value === 'object' ? '' : String(value)}`.trim();
}

/** Where a record came from, for error messages. */
export interface RecordSource {
  file: string;
  /** 1-based row number. */
  row: number;
}

/**
 * The value at a dotted path (`reward_model.ground_truth`, `prompt.1.content`: numeric
 * segments index arrays). A missing key throws a RedError naming file, row and the key.
 */
export function getPath(record: DataRecord, fieldPath: string, source?: RecordSource): unknown {
  const value = tryGetPath(record, fieldPath);
  if (value === undefined) {
    const where = source ? `${source.file}: row ${source.row}: ` : '';
    const parts = fieldPath.split('.');
    let cur: unknown = record;
    let reached = '';
    for (const part of parts) {
      const next = step(cur, part);
      if (next === undefined) {
        const have = isRecord(cur)
          ? `; it has keys ${
              Object.keys(cur)
                .map((k) => `'${k}'`)
                .join(', ') || '(none)'
            }`
          : Array.isArray(cur)
            ? `; it is an array of ${cur.length}`
            : `; it is ${describe(cur)}`;
        return fail(
          `${where}missing field '${fieldPath}' (no '${part}' in ${reached ? `'${reached}'` : 'the record'}${have})`,
        );
      }
      reached = reached ? `${reached}.${part}` : part;
      cur = next;
    }
  }
  return value;
}

/** The value at a dotted path, or undefined when any segment is missing. */
export function tryGetPath(record: DataRecord, fieldPath: string): unknown {
  let cur: unknown = record;
  for (const part of fieldPath.split('.')) {
    cur = step(cur, part);
    if (cur === undefined) return undefined;
  }
  return cur;
}

function step(cur: unknown, part: string): unknown {
  if (Array.isArray(cur)) {
    if (!/^\d+$/.test(part)) return undefined;
    return cur[Number(part)];
  }
  if (isRecord(cur)) return Object.prototype.hasOwnProperty.call(cur, part) ? cur[part] : undefined;
  return undefined;
}
