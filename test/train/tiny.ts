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
import { createProgress } from '../../src/train/metrics.ts';
import { runTrain } from '../../src/train/run.ts';

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

/**
 * A model that can score: the tiny model after 30 SFT steps on "\boxed{1}" / "\boxed{2}" for
 * prompts whose answer (1 or 2) it cannot read off, so its rollouts are right about half the time
 * and GRPO-style methods keep mixed groups (a random model never answers, every group is dropped
 * and grpo or bread would never update). Writes DIR/coin.jsonl and DIR/coin-warm/; returns the
 * warmed model's folder and the data.
 */
export async function writeCoinModel(dir: string, tiny: { model: string }): Promise<{ model: string; train: string }> {
  const answers = [1, 2, 2, 1, 2, 1, 1, 2, 1, 2, 2, 1];
  const train = path.join(dir, 'coin.jsonl');
  writeFileSync(
    train,
    answers
      .map((a, i) =>
        JSON.stringify({ problem: `Pick 1 or 2 (${'abcdefghijkl'[i]}).`, answer: String(a), distill: `\\boxed{${a}}` }),
      )
      .join('\n') + '\n',
  );
  const file = writeConfig(
    path.join(dir, 'coin-warm.yaml'),
    `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${train} }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 12 }
sft: { batchSize: 12, lr: 3e-2 }
schedule: { totalSteps: 30, warmupSteps: 0 }
checkpoint: { every: 1000, keep: 1 }
log: { progress: none }
`,
  );
  await runTrain(
    { config: file, out: path.join(dir, 'coin-warm'), method: 'sft', sets: [], resume: false },
    createProgress('none'),
  );
  return { model: path.join(dir, 'coin-warm', 'checkpoints', 'step-30'), train };
}
