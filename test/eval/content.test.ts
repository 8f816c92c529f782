// `red eval` resumes by what the model holds, not where it lies: replacing model.safetensors in the
// same folder makes the same command refuse the folder's samples (they are another model's), naming
// the file that changed, while the same model under another path resumes as if nothing moved; a
// benchmark row that is not UTF-8 is left out with a warning, not silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';
import { tempDir } from '../helpers/tmp.ts';
import { byteTokenizerFiles } from './tiny.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const ROOT = tempDir('red-eval-content-');

/** A tiny random model folder with the byte tokenizer; `seed` decides its weights. */
function modelFolder(dir: string, seed: number): string {
  const config = parseConfig(
    tinyQwen2Config({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, vocab_size: 260 }),
  );
  Qwen2Model.init(config, seed, { backend: referenceBackend }).save(dir);
  const tok = byteTokenizerFiles();
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig));
  return dir;
}

const data = path.join(ROOT, 'q.jsonl');
writeFileSync(data, ['{"problem": "1+1", "answer": "2"}', '{"problem": "2+2", "answer": "4"}', ''].join('\n'));

function redEval(model: string, out: string, file = data) {
  return spawnSync(
    process.execPath,
    [BIN, 'eval', '--model', model, '--benchmarks', `toy=${file}`, '--n', '2', '--max-tokens', '4'].concat([
      '--prompt',
      'raw',
      '--backend',
      'reference',
      '--out',
      out,
    ]),
    { encoding: 'utf8', env: { ...process.env, RED_DEBUG: '' } },
  );
}

test('replacing the weights in the same folder: the resume is refused naming model.safetensors; a moved copy resumes', () => {
  const model = modelFolder(path.join(ROOT, 'model'), 7);
  const out = path.join(ROOT, 'out');
  const first = redEval(model, out);
  assert.equal(first.status, 0, first.stderr);
  const samples = readFileSync(path.join(out, 'samples.jsonl'), 'utf8');

  // The same model elsewhere: every problem is reused, none redone.
  const moved = path.join(ROOT, 'moved');
  cpSync(model, moved, { recursive: true });
  const again = redEval(moved, out);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(readFileSync(path.join(out, 'samples.jsonl'), 'utf8'), samples);

  // Other weights under the first path.
  modelFolder(model, 8);
  const changed = redEval(model, out);
  assert.equal(changed.status, 1, changed.stderr);
  assert.equal(changed.stderr.trim().split('\n').length, 1, changed.stderr);
  assert.match(
    changed.stderr,
    /^red: .*run\.json: this folder holds an evaluation with other settings \(the model changed \(model\.safetensors: sha256 [0-9a-f]{8}… → [0-9a-f]{8}…\)\); its samples are not this run's: use another --out, or the same model and settings\n$/,
  );
  assert.equal(readFileSync(path.join(out, 'samples.jsonl'), 'utf8'), samples);
});

test('a benchmark row that is not UTF-8 is left out with one warning', () => {
  const model = modelFolder(path.join(ROOT, 'model-utf8'), 7);
  const file = path.join(ROOT, 'bad.jsonl');
  writeFileSync(
    file,
    Buffer.concat([
      Buffer.from('{"problem": "1+1", "answer": "2"}\n{"problem": "caf'),
      Buffer.from([0xe9]), // Latin-1 é: not UTF-8
      Buffer.from('", "answer": "3"}\n{"problem": "2+2", "answer": "4"}\n'),
    ]),
  );
  const r = redEval(model, path.join(ROOT, 'out-utf8'), file);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stderr.includes(`warning: ${file}: skipped 1 row(s) (1 not UTF-8); they are not evaluated\n`), r.stderr);
});
