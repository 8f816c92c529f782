// A tiny real setup for end-to-end trainer tests: the built-in task's data and tokenizer and a
// randomly initialised 1-layer Qwen2 (vocab 512, C 16) saved as a Hugging Face folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { writeBuiltinDataset } from '../../src/data/task/builtin.ts';
import { writeBuiltinTokenizer, BUILTIN_VOCAB_SIZE } from '../../src/data/task/tokenizer.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';

export const TINY_CONFIG = tinyQwen2Config({ vocab_size: BUILTIN_VOCAB_SIZE, initializer_range: 0.1 });

/** Writes DIR/model (weights + tokenizer) and DIR/data (train.jsonl, test.jsonl); returns their paths. */
export function writeTinySetup(dir: string, trainRows = 24): { model: string; train: string } {
  const model = path.join(dir, 'model');
  const data = path.join(dir, 'data');
  mkdirSync(model, { recursive: true });
  const m = Qwen2Model.init(parseConfig(TINY_CONFIG), 3, { backend: referenceBackend });
  m.save(model);
  writeBuiltinTokenizer(model);
  writeBuiltinDataset({ out: data, seed: 1, train: trainRows, test: 4 });
  return { model, train: path.join(data, 'train.jsonl') };
}

export function writeConfig(file: string, text: string): string {
  writeFileSync(file, text);
  return file;
}

/**
 * A train config for the tiny setup on the reference backend, one step of 2 prompts × 2 samples;
 * responses up to 240 tokens, so the teacher traces verify whole; `extra` adds YAML lines.
 */
export function tinyTrainYaml(tiny: { model: string; train: string }, extra = ''): string {
  return `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${tiny.train}, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 240 }
sft: { batchSize: 2 }
log: { progress: none }
${extra}`;
}
