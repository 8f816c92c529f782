import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { qwenBoxedPrompt } from '../../src/data/dataset.ts';
import { generateProblems, splitOf } from '../../src/data/task/problems.ts';
import { BUILTIN_IDS, BUILTIN_VOCAB_SIZE, renderChatML, writeBuiltinTokenizer } from '../../src/data/task/tokenizer.ts';
import { packSequences } from '../../src/model/batch.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import { RedError } from '../../src/util/errors.ts';
import { pretrain, PRETRAIN_DEFAULTS, validatePretrainOptions } from '../../src/train/pretrain.ts';
import { pretrainDocuments, PromptEncoder, TABLE_LINES } from '../../src/data/task/documents.ts';
import { QUICK_MODEL } from '../../src/data/task/model.ts';
import { lastBoxed } from '../../src/reward/extract.ts';
import { tempDir } from '../helpers/tmp.ts';

test('prompt ids built from cached pieces equal the ids of the whole rendered prompt', () => {
  const tokDir = tempDir('red-pt-tok-');
  writeBuiltinTokenizer(tokDir);
  const tok = loadTokenizer(tokDir);
  const enc = new PromptEncoder(tok);
  for (const p of generateProblems({ seed: 3, count: 300, split: 'train', repeats: true })) {
    assert.deepEqual(enc.encode(p.text), tok.encode(renderChatML(qwenBoxedPrompt(p.text), true)), p.text);
  }
  for (const odd of [' leading space?', 'ends in a digit 7', 'two\nlines.']) {
    assert.deepEqual(enc.encode(odd), tok.encode(renderChatML(qwenBoxedPrompt(odd), true)), odd);
  }
});

test("the pretraining pool mixes f's table, direct answers and a traceShare of teacher traces, all train split", () => {
  const o = {
    seed: 5,
    poolSize: 300,
    traceShare: 0.15,
    tableShare: 0.2,
    levelWeights: [2, 1, 0, 0, 0] as [number, number, number, number, number],
    traceLevelWeights: [1, 1, 1, 1, 1] as [number, number, number, number, number],
  };
  const docs = pretrainDocuments(o);
  assert.equal(docs.length, 300);
  const traces = docs.filter((d) => d.kind === 'trace');
  assert.equal(traces.length, 45); // round(300 · 0.15)
  const tables = docs.filter((d) => d.kind === 'table');
  assert.equal(tables.length, 60); // round(300 · 0.2)
  for (const d of tables) {
    const lines = d.response.split('\n');
    assert.equal(lines.length, TABLE_LINES);
    // Each line n → 10^n mod 97, checked by BigInt exponentiation.
    for (const line of lines) {
      const [n, y] = line.split(' → ').map(Number);
      assert.equal(BigInt(y), 10n ** BigInt(n) % 97n, line);
    }
  }
  for (const d of docs.filter((x) => x.kind !== 'table')) {
    assert.ok(d.problem);
    assert.equal(d.prompt, d.problem.text);
    assert.equal(splitOf(d.prompt), 'train', d.prompt);
    assert.equal(d.response.startsWith('<think>\n'), d.kind === 'trace');
    assert.equal(lastBoxed(d.response), d.problem.answer);
    if (d.kind === 'direct') assert.ok(d.problem.level <= 2, d.prompt);
  }
  // The traces' problems come from their own stream, not the first problems of the short pool.
  const shortTexts = docs.filter((d) => d.kind === 'direct').map((d) => d.prompt);
  assert.notDeepEqual(
    traces.map((d) => d.prompt),
    shortTexts.slice(0, 45),
  );
  assert.equal(pretrainDocuments({ ...o, traceShare: 0 }).filter((d) => d.kind === 'trace').length, 0);
  assert.ok(PRETRAIN_DEFAULTS.traceShare >= 0.1 && PRETRAIN_DEFAULTS.traceShare <= 0.4);
  // By default the base sees chains of one or two steps only.
  const easy = pretrainDocuments({ ...o, traceLevelWeights: PRETRAIN_DEFAULTS.traceLevelWeights }).filter(
    (d) => d.kind === 'trace',
  );
  assert.ok(easy.length > 0 && easy.every((d) => (d.problem?.level ?? 9) <= 2), 'a default trace above level 2');
  for (const bad of [{ traceShare: 1 }, { tableShare: 0.8 }])
    assert.throws(
      () => validatePretrainOptions({ ...PRETRAIN_DEFAULTS, out: 'x', ...bad }),
      (e: unknown) => e instanceof RedError && new RegExp(Object.keys(bad)[0]).test(e.message),
    );
});

test('a short pretrain run lowers the loss and writes a folder that loads back', async () => {
  const out = path.join(tempDir('red-pt-'), 'base');
  const steps = 24;
  const r = await pretrain({
    out,
    seed: 1,
    steps,
    batchSize: 6,
    lr: 1e-2,
    warmupSteps: 2,
    model: QUICK_MODEL,
    poolSize: 200,
    evalPerLevel: 1,
    evalSamples: 1,
  });
  assert.equal(r.losses.length, steps);
  // From scratch the first loss is near ln(V) (uniform over 512 ids); training must bring it well down.
  assert.ok(
    Math.abs(r.losses[0] - Math.log(BUILTIN_VOCAB_SIZE)) < 0.5,
    `first loss ${r.losses[0]} vs ln V ${Math.log(BUILTIN_VOCAB_SIZE)}`,
  );
  const tail = r.losses.slice(-4).reduce((a, b) => a + b, 0) / 4;
  console.log(
    `pretrain test: loss ${r.losses[0].toFixed(3)} → ${tail.toFixed(3)} in ${steps} steps, ${r.seconds.toFixed(1)}s`,
  );
  assert.ok(tail < r.losses[0] - 1.5, `loss ${r.losses[0]} → ${tail}`);
  assert.equal(r.levels.length, 5);

  for (const f of [
    'config.json',
    'model.safetensors',
    'generation_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]) {
    assert.ok(existsSync(path.join(out, f)), `missing ${f}`);
  }
  const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.model_type, 'qwen2');
  assert.equal(config.vocab_size, BUILTIN_VOCAB_SIZE);
  assert.equal(config.hidden_size, QUICK_MODEL.hidden);
  const gen = JSON.parse(readFileSync(path.join(out, 'generation_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(gen.eos_token_id, [BUILTIN_IDS.imEnd, BUILTIN_IDS.endoftext]);

  const model = await Qwen2Model.load(out);
  assert.equal(model.params.length, r.parameters);
  const tok = loadTokenizer(out, model.config.vocabSize);
  assert.deepEqual(
    tok.eosIds,
    [BUILTIN_IDS.endoftext, BUILTIN_IDS.imEnd].sort((a, b) => a - b),
  );
  // The reloaded model scores a training-format sequence better than a fresh initialisation does.
  const p = generateProblems({ seed: 1, count: 1, split: 'train', levelWeights: [1, 0, 0, 0, 0] })[0];
  const prompt = new PromptEncoder(tok).encode(p.text);
  const response = [...tok.encode(`${p.answer}`), BUILTIN_IDS.imEnd];
  const batch = packSequences([[...prompt, ...response]], [prompt.length]);
  const nll = (m: Qwen2Model) => -Array.from(m.forward(batch).logprob).reduce((a, b) => a + b, 0) / response.length;
  const fresh = Qwen2Model.init(model.config, 99);
  assert.ok(nll(model) < nll(fresh) - 1, `trained ${nll(model)} vs fresh ${nll(fresh)}`);
});

test('more held-out problems per level than a level has: refused before any training, nothing written', async () => {
  const out = path.join(tempDir('red-pt-eval-'), 'base');
  const steps: number[] = [];
  await assert.rejects(
    pretrain({
      out,
      seed: 1,
      steps: 3,
      batchSize: 2,
      model: QUICK_MODEL,
      poolSize: 20,
      evalPerLevel: 100_000,
      backend: 'reference',
      onStep: (s) => steps.push(s.step),
    }),
    (err: Error) =>
      err instanceof RedError && /could only generate \d+ distinct level-1 test problems/.test(err.message),
  );
  assert.deepEqual(steps, [], 'no step ran');
  assert.ok(!existsSync(path.join(out, 'model.safetensors')));
});
