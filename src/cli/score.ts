// `red score`: for every position of a text (or token ids), the model's log-prob of the next
// token and the entropy of its next-token distribution, from the training forward pass.
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { parseIdList } from './generate.ts';

interface ScoreOptions {
  model: string;
  text?: string;
  ids?: string;
  json: boolean;
  backend: 'auto' | 'native' | 'reference';
  precision: string;
}

export function registerScore(program: Command): void {
  program
    .command('score')
    .description('per position: log p(next token) and the entropy of the next-token distribution')
    .requiredOption('--model <dir>', 'Hugging Face model folder or Hub id (org/name[@rev])')
    .option('--text <text>', "the text to score (needs the folder's tokenizer)")
    .option('--ids <ids>', 'the tokens to score, comma-separated ids')
    .option('--json', 'print one JSON object: ids, next_logprob, entropy, total_logprob', false)
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option(
      '--precision <name>',
      'fp32, or bf16: weights in bfloat16, GEMMs accumulating in fp32 (faster where the CPU has avx512_bf16)',
      'fp32',
    )
    .action(async (opts: ScoreOptions) => {
      const [{ Qwen2Model }, { getBackend }, tk, { packSequences }, { parsePrecision }] = await Promise.all([
        import('../model/qwen2.ts'),
        import('../engine/index.ts'),
        import('../model/tokenizer.ts'),
        import('../model/batch.ts'),
        import('../engine/precision.ts'),
      ]);
      const precision = parsePrecision(opts.precision, '--precision');
      if ((opts.text === undefined) === (opts.ids === undefined))
        fail('give exactly one of --text TEXT or --ids 1,2,3');
      opts.model = await (await import('../hub/snapshot.ts')).resolveModelPath(opts.model, '--model');
      const model = await Qwen2Model.load(opts.model, { backend: getBackend(opts.backend), precision });
      const V = model.config.vocabSize;
      const tokenizer =
        opts.text !== undefined || tk.hasTokenizer(opts.model)
          ? tk.loadTokenizer(opts.model, V, 'give the tokens as ids (--ids) instead')
          : undefined;
      const ids = opts.ids !== undefined ? parseIdList(opts.ids, '--ids') : tokenizer!.encode(opts.text!);
      if (ids.length < 2) fail(`need at least two tokens to score, got ${ids.length}`);
      for (const id of ids) if (id >= V) fail(`token id ${id} is outside the model's vocabulary (0..${V - 1})`);
      // position t predicts ids[t+1]: T−1 scored positions
      const { logprob, entropy } = model.forward(packSequences([ids]));
      const T = ids.length;
      const lp = Array.from(logprob.subarray(0, T - 1)),
        ent = Array.from(entropy.subarray(0, T - 1));
      const total = lp.reduce((a, b) => a + b, 0);
      if (opts.json) {
        console.log(JSON.stringify({ ids, next_logprob: lp, entropy: ent, total_logprob: total }));
        return;
      }
      const show = (id: number) => (tokenizer ? JSON.stringify(tokenizer.decode([id], false)) : String(id));
      console.log(['pos', 'token', 'next', 'logprob', 'entropy'].join('\t'));
      for (let t = 0; t < T - 1; t++)
        console.log([t, show(ids[t]), show(ids[t + 1]), lp[t].toFixed(4), ent[t].toFixed(4)].join('\t'));
      console.log(
        `total log-prob ${total.toFixed(4)} over ${T - 1} tokens (perplexity ${Math.exp(-total / (T - 1)).toFixed(3)})`,
      );
    });
}
