// `red serve`: serves a model folder over HTTP (OpenAI-compatible and SGLang-style endpoints)
// with continuous batching; prints `listening on http://HOST:PORT` when ready.
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { intAtLeast } from './generate.ts';

interface ServeCliOptions {
  model: string;
  host: string;
  port: number;
  maxBatch: number;
  maxLen?: number;
  maxTokens?: number;
  maxBodyMb: number;
  servedModelName?: string;
  weightVersion: string;
  backend: 'auto' | 'native' | 'reference';
  precision: string;
  logprobsMode: string;
}

/** vLLM's --logprobs-mode values red serve has (the logits modes are not offered). */
const LOGPROBS_MODES: Record<string, 'raw' | 'processed'> = {
  raw: 'raw',
  raw_logprobs: 'raw',
  processed: 'processed',
  processed_logprobs: 'processed',
};

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'serve a model over HTTP: /v1/completions, /v1/chat/completions, /generate, /update_weights_from_disk (continuous batching)',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .option(
      '--host <host>',
      'address to bind (loopback by default; 0.0.0.0 exposes the server to the network)',
      '127.0.0.1',
    )
    .option('--port <port>', 'TCP port (0 = any free port, printed when ready)', intAtLeast('--port', 0), 8000)
    .option('--max-batch <n>', 'sequences decoded together (KV cache slots)', intAtLeast('--max-batch', 1), 64)
    .option(
      '--max-len <n>',
      'positions per sequence, prompt + completion (default: min(max_position_embeddings, 4096))',
      intAtLeast('--max-len', 2),
    )
    .option(
      '--max-tokens <n>',
      'largest max_tokens a request may ask for (default: --max-len − 1)',
      intAtLeast('--max-tokens', 1),
    )
    .option('--max-body-mb <n>', 'largest request body in MiB', intAtLeast('--max-body-mb', 1), 16)
    .option('--served-model-name <name>', 'model name in /v1/models (default: the folder name)')
    .option('--weight-version <v>', 'weight_version of the loaded weights', '0')
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option('--precision <name>', 'fp32, or bf16: weights and KV cache in bfloat16, GEMMs accumulating in fp32', 'fp32')
    .option(
      '--logprobs-mode <mode>',
      "what logprobs are (vLLM's names): processed_logprobs = of the distribution each token was drawn from (after temperature, penalties, top-k/top-p; what importance sampling needs), raw_logprobs = the model's log-softmax (vLLM's default)",
      'processed_logprobs',
    )
    .action(async (opts: ServeCliOptions) => {
      const [{ Qwen2Model }, { getBackend }, tk, { createRedServer }, { parsePrecision }] = await Promise.all([
        import('../model/qwen2.ts'),
        import('../engine/index.ts'),
        import('../model/tokenizer.ts'),
        import('../serve/server.ts'),
        import('../engine/precision.ts'),
      ]);
      const precision = parsePrecision(opts.precision, '--precision');
      const logprobsMode = Object.hasOwn(LOGPROBS_MODES, opts.logprobsMode) ? LOGPROBS_MODES[opts.logprobsMode] : null;
      if (!logprobsMode)
        fail(`--logprobs-mode must be processed_logprobs or raw_logprobs, got ${JSON.stringify(opts.logprobsMode)}`);
      if (opts.port > 65535) fail(`--port must be ≤ 65535, got ${opts.port}`);
      const model = await Qwen2Model.load(opts.model, { backend: getBackend(opts.backend), precision });
      const tokenizer = tk.hasTokenizer(opts.model) ? tk.loadTokenizer(opts.model, model.config.vocabSize) : undefined;
      const eosIds = [...new Set([...tk.eosIdsOf(opts.model), ...(tokenizer?.eosIds ?? [])])];
      const maxLen = opts.maxLen ?? Math.min(model.config.maxPositionEmbeddings, 4096);
      const red = createRedServer({
        model,
        modelDir: opts.model,
        tokenizer,
        eosIds,
        servedName: opts.servedModelName,
        maxBatch: opts.maxBatch,
        maxLen,
        maxTokens: opts.maxTokens,
        maxBodyBytes: opts.maxBodyMb * 1024 * 1024,
        weightVersion: opts.weightVersion,
        logprobsMode,
      });
      let port: number;
      try {
        port = await red.listen(opts.host, opts.port);
      } catch (err) {
        fail(
          `cannot listen on ${opts.host}:${opts.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      console.log(`listening on http://${host}:${port}`);
      const stop = () => {
        void red.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
