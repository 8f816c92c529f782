// Training datasets: maps the records of a JSONL/Parquet file onto training examples
// (prompt, gold answer, optional offline teacher trace) through named field presets or a custom
// mapping, validates every row up front, and draws them in a seeded, resumable epoch order.
import path from 'node:path';
import { fail, RedError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import {
  describe,
  getPath,
  isRecord,
  readRecordsDetailed,
  tryGetPath,
  type DataRecord,
  type OnBadRow,
  type RecordSource,
  type SkippedRows,
} from './records.ts';

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface TrainingExample {
  /** Stable id: `<file name>:<row>`; names the source row in later messages and logs. */
  id: string;
  /** The problem text (the user turn when the source gives a chat list). */
  problem: string;
  /** The full prompt as a chat list when the source gives one (e.g. LUFFY's [system, user]); else undefined. */
  messages?: ChatMessage[];
  /** Gold answer as text (numbers are printed as JS prints them: 27.0 → "27"). */
  answer: string;
  /** The offline teacher trace (the assistant's full response, ending in a boxed answer), if mapped. */
  trace?: string;
  /** Difficulty level, where the source has one (the built-in task: 1..5). */
  level?: number;
}

/**
 * Where each field of an example lives in a record, as dotted paths (see getPath).
 * Exactly one of `prompt` (a chat list) or `problem` (text) must be given.
 */
export interface FieldMapping {
  /** Path to a chat list [{role, content}]; the last user turn becomes `problem`. */
  prompt?: string;
  /** Path to the problem text. */
  problem?: string;
  /** Path to the gold answer (string or number). */
  answer: string;
  /** Path to the teacher trace: a string, or a chat list whose assistant turn holds it. When set, every row must have one. */
  trace?: string;
  /** Path to an integer difficulty level (optional in each row). */
  level?: string;
}

/**
 * Ready mappings for the formats in use.
 * - `luffy`: LUFFY's OpenR1-Math-46k-8192 (verl schema): `prompt` = [system, user], `target` =
 *   [{role: 'assistant', content: R1 trace}], `reward_model.ground_truth`.
 * - `paper`: the RED paper's release and the built-in task: `problem`, `answer`, `distill`, (`level`).
 * - `luffy-eval`, `paper-eval`: the same without a trace (evaluation sets, prompts for pure RL).
 */
export const FIELD_PRESETS = {
  luffy: { prompt: 'prompt', answer: 'reward_model.ground_truth', trace: 'target' },
  paper: { problem: 'problem', answer: 'answer', trace: 'distill', level: 'level' },
  'luffy-eval': { prompt: 'prompt', answer: 'reward_model.ground_truth' },
  'paper-eval': { problem: 'problem', answer: 'answer', level: 'level' },
} as const satisfies Record<string, FieldMapping>;
export type FieldPresetName = keyof typeof FIELD_PRESETS;

/** A preset name, or a custom mapping written `problem=question,answer=final.answer,trace=solution`. */
export function parseFieldMapping(spec: string | FieldMapping): FieldMapping {
  if (typeof spec !== 'string') return validateMapping(spec, 'field mapping');
  if (Object.hasOwn(FIELD_PRESETS, spec)) return FIELD_PRESETS[spec as FieldPresetName];
  if (!spec.includes('=')) {
    return fail(
      `unknown field preset '${spec}'; expected one of ${Object.keys(FIELD_PRESETS).join(', ')} or a mapping like 'problem=question,answer=answer,trace=solution'`,
    );
  }
  const out: Record<string, string> = {};
  const keys = ['prompt', 'problem', 'answer', 'trace', 'level'];
  for (const part of spec.split(',')) {
    const [key, value, ...rest] = part.split('=').map((s) => s.trim());
    if (!keys.includes(key) || !value || rest.length > 0) {
      fail(`field mapping '${spec}': bad entry '${part}'; expected KEY=PATH with KEY one of ${keys.join(', ')}`);
    }
    out[key] = value;
  }
  return validateMapping(out as unknown as FieldMapping, `field mapping '${spec}'`);
}

function validateMapping(m: FieldMapping, what: string): FieldMapping {
  if ((m.prompt === undefined) === (m.problem === undefined))
    fail(`${what}: give exactly one of 'prompt' (a chat list) or 'problem' (text)`);
  if (!m.answer) fail(`${what}: 'answer' is required`);
  return m;
}

export interface LoadDatasetOptions {
  /** Preset name or mapping (default `paper`). */
  fields?: FieldPresetName | FieldMapping | string;
  /** A row with a missing or malformed field: stop with an error (default) or skip and count it. */
  onBadRow?: OnBadRow;
  /** Keep only the first N valid examples. */
  limit?: number;
  /** Rows over this many bytes are skipped unread and counted (default: no limit). */
  maxRowBytes?: number;
}

export interface LoadedDataset {
  file: string;
  examples: TrainingExample[];
  /** Rows skipped, in all: malformed (JSON or fields; 0 with onBadRow 'error'), not UTF-8, over maxRowBytes. */
  skipped: number;
  skippedBy: SkippedRows;
}

/** Reads and validates a whole training (or evaluation) file. */
export async function loadDataset(file: string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  const mapping = parseFieldMapping(options.fields ?? 'paper');
  const onBadRow = options.onBadRow ?? 'error';
  const read = await readRecordsDetailed(file, { onBadRow, maxRowBytes: options.maxRowBytes });
  const out: LoadedDataset = { file, examples: [], skipped: read.skipped, skippedBy: read.skippedBy };
  for (let i = 0; i < read.records.length; i++) {
    if (options.limit !== undefined && out.examples.length >= options.limit) break;
    try {
      out.examples.push(toExample(read.records[i], mapping, { file, row: read.rows[i] }));
    } catch (err) {
      if (onBadRow === 'skip' && err instanceof RedError) {
        out.skipped++;
        out.skippedBy.malformed++;
      } else throw err;
    }
  }
  if (out.examples.length === 0)
    fail(
      `${file}: no usable rows${out.skipped > 0 ? ` (${out.skipped} skipped: ${describeSkipped(out.skippedBy)})` : ''}`,
    );
  return out;
}

/** "2 not UTF-8, 1 over the row size limit" (the non-zero counts). */
export function describeSkipped(s: SkippedRows): string {
  const parts: [number, string][] = [
    [s.malformed, 'malformed'],
    [s.nonUtf8, 'not UTF-8'],
    [s.tooLarge, 'over data.maxRowBytes'],
  ];
  return parts
    .filter(([n]) => n > 0)
    .map(([n, what]) => `${n} ${what}`)
    .join(', ');
}

/** One record → one validated example; a RedError names file, row and field on any problem. */
export function toExample(record: DataRecord, mapping: FieldMapping, source: RecordSource): TrainingExample {
  const where = `${source.file}: row ${source.row}`;
  const example: TrainingExample = { id: `${path.basename(source.file)}:${source.row}`, problem: '', answer: '' };
  if (mapping.prompt !== undefined) {
    const messages = chatList(getPath(record, mapping.prompt, source), `${where}: field '${mapping.prompt}'`);
    const user = messages.filter((m) => m.role === 'user').at(-1);
    if (!user) fail(`${where}: field '${mapping.prompt}': the chat list has no user turn`);
    example.messages = messages;
    example.problem = user.content;
  } else if (mapping.problem !== undefined) {
    example.problem = nonEmptyText(getPath(record, mapping.problem, source), `${where}: field '${mapping.problem}'`);
  }
  const answer = getPath(record, mapping.answer, source);
  if (typeof answer === 'number' && Number.isFinite(answer)) example.answer = String(answer);
  else example.answer = nonEmptyText(answer, `${where}: field '${mapping.answer}'`).trim();
  if (mapping.trace !== undefined)
    example.trace = traceText(getPath(record, mapping.trace, source), `${where}: field '${mapping.trace}'`);
  if (mapping.level !== undefined) {
    const level = tryGetPath(record, mapping.level);
    if (level !== undefined && level !== null) {
      if (typeof level !== 'number' || !Number.isInteger(level))
        fail(`${where}: field '${mapping.level}': expected an integer level, got ${describe(level)}`);
      example.level = level;
    }
  }
  return example;
}

function nonEmptyText(value: unknown, what: string): string {
  if (typeof value !== 'string') return fail(`${what}: expected a string, got ${describe(value)}`);
  if (value.trim() === '') return fail(`${what}: is empty`);
  return value;
}

function chatList(value: unknown, what: string): ChatMessage[] {
  if (!Array.isArray(value)) return fail(`${what}: expected a chat list [{role, content}], got ${describe(value)}`);
  if (value.length === 0) return fail(`${what}: the chat list is empty`);
  return value.map((m, i) => {
    if (!isRecord(m)) return fail(`${what}: item ${i}: expected {role, content}, got ${describe(m)}`);
    const role = m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      return fail(`${what}: item ${i}: role must be system, user or assistant, got ${describe(role)}`);
    }
    if (typeof m.content !== 'string')
      return fail(`${what}: item ${i}: content must be a string, got ${describe(m.content)}`);
    return { role, content: m.content };
  });
}

/** A trace is a string, or a chat list whose (last) assistant turn holds it (LUFFY's `target`). */
function traceText(value: unknown, what: string): string {
  if (typeof value === 'string') return nonEmptyText(value, what);
  if (Array.isArray(value)) {
    const turns = chatList(value, what);
    const reply = turns.filter((m) => m.role === 'assistant').at(-1);
    if (!reply) return fail(`${what}: the trace list has no assistant turn`);
    return nonEmptyText(reply.content, what);
  }
  return fail(
    `${what}: expected the teacher trace as a string or [{role: 'assistant', content}], got ${describe(value)}`,
  );
}

/** The evaluation/training prompt of RED-SPEC ("qwen-boxed"), used when the source gives only problem text. */
export const QWEN_BOXED_SYSTEM = 'You are a helpful assistant.';
export function qwenBoxedPrompt(problem: string): ChatMessage[] {
  return [
    { role: 'system', content: QWEN_BOXED_SYSTEM },
    { role: 'user', content: `${problem}\nPlease reason step by step, and put your final answer within \\boxed{}.` },
  ];
}

/** The chat list to feed the model: the source's own prompt if it has one, else qwen-boxed. */
export function promptMessages(example: TrainingExample): ChatMessage[] {
  return example.messages ?? qwenBoxedPrompt(example.problem);
}

/** Position in the data stream: `index` items of epoch `epoch` were already drawn. JSON-serialisable. */
export interface EpochCursor {
  epoch: number;
  index: number;
}

/**
 * Draws items epoch after epoch, each epoch a fresh permutation derived only from (seed, epoch),
 * so a run resumed from a saved cursor draws exactly the items the uninterrupted run would have.
 */
export class EpochIterator<T> {
  private order: number[] = [];
  private orderEpoch = -1;
  private epoch: number;
  private index: number;

  constructor(
    private readonly items: readonly T[],
    private readonly seed: number,
    cursor: EpochCursor = { epoch: 0, index: 0 },
  ) {
    if (items.length === 0) fail('cannot iterate over an empty dataset');
    if (
      !Number.isInteger(cursor.epoch) ||
      cursor.epoch < 0 ||
      !Number.isInteger(cursor.index) ||
      cursor.index < 0 ||
      cursor.index > items.length
    ) {
      fail(`data cursor ${JSON.stringify(cursor)} does not fit a dataset of ${items.length} items`);
    }
    this.epoch = cursor.epoch;
    this.index = cursor.index;
  }

  /** The permutation of item indices for one epoch. */
  epochOrder(epoch: number): number[] {
    // Mix seed and epoch into one 32-bit seed (golden-ratio multiply keeps nearby epochs apart).
    const rng = new Rng((this.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
    return rng.shuffle(Array.from({ length: this.items.length }, (_, i) => i));
  }

  next(): T {
    if (this.index >= this.items.length) {
      this.epoch++;
      this.index = 0;
    }
    if (this.orderEpoch !== this.epoch) {
      this.order = this.epochOrder(this.epoch);
      this.orderEpoch = this.epoch;
    }
    return this.items[this.order[this.index++]];
  }

  take(n: number): T[] {
    return Array.from({ length: n }, () => this.next());
  }

  cursor(): EpochCursor {
    return { epoch: this.epoch, index: this.index };
  }

  /** Fractional epochs completed, for logging. */
  progress(): number {
    return this.epoch + this.index / this.items.length;
  }
}
