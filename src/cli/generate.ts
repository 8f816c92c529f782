// `red generate`: samples completions of one prompt (text, chat, or token ids) from a model
// folder, streaming text to a terminal, or one JSON object per sample with --json.
import type { Command } from 'commander';
import type { Sample } from '../rollout/sampler.ts';
import { fail } from '../util/errors.ts';

/** "1,2,3" → [1, 2, 3]; `flag` names the option in errors. */
export function parseIdList(value: string, flag: string): number[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) fail(`${flag} needs at least one token id, e.g. ${flag} 1,2,3`);
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) fail(`${flag}: "${p}" is not a token id (a non-negative integer)`);
    return n;
  });
}

function number(flag: string, check: (n: number) => boolean, expected: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !check(n)) fail(`${flag} must be ${expected}, got "${v}"`);
    return n;
  };
}
export const intAtLeast = (flag: string, min: number) =>
  number(flag, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);

interface GenerateOptions {
  model: string;
  prompt?: string;
  promptIds?: string;
  chat: boolean;
  system?: string;
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  seed: number;
  stop: string[];
  json: boolean;
  backend: 'auto' | 'native' | 'reference';
  precision: string;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('sample completions of a prompt with a KV cache (streams text; --json: one object per sample)')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, model.safetensors, tokenizer.json)')
    .option('--prompt <text>', "the prompt text (needs the folder's tokenizer)")
    .option('--prompt-ids <ids>', 'the prompt as comma-separated token ids, e.g. 1,2,3')
    .option('--chat', "wrap --prompt as a user message in the model's chat_template (with the assistant header)", false)
    .option('--system <text>', 'with --chat: a system message before the prompt')
    .option('--n <n>', 'samples', intAtLeast('--n', 1), 1)
    .option(
      '--temperature <t>',
      '0 = greedy',
      number('--temperature', (t) => t >= 0, 'a number ≥ 0'),
      1,
    )
    .option(
      '--top-p <p>',
      'nucleus sampling mass (1 = off)',
      number('--top-p', (p) => p > 0 && p <= 1, 'in (0, 1]'),
      1,
    )
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', intAtLeast('--top-k', 0), 0)
    .option('--max-tokens <m>', 'new tokens per sample at most', intAtLeast('--max-tokens', 1), 256)
    .option('--seed <s>', 'sampling seed (same seed, same samples)', intAtLeast('--seed', 0), 0)
    .option('--stop <text...>', 'stop strings (need a tokenizer)', [])
    .option('--json', 'print one JSON object per sample: ids, text, logprobs, finish_reason', false)
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option(
      '--precision <name>',
      'fp32, or bf16: weights in bfloat16, GEMMs accumulating in fp32 (faster where the CPU has avx512_bf16)',
      'fp32',
    )
    .action(generateAction);
}

/** `red generate`: the model and its tokenizer, the prompt, a check that it fits, then the samples printed as they finish. */
async function generateAction(opts: GenerateOptions): Promise<void> {
  if ((opts.prompt === undefined) === (opts.promptIds === undefined))
    fail('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  if (opts.chat && opts.prompt === undefined) fail('--chat needs --prompt TEXT');
  const { model, tokenizer, eosIds } = await loadGenerationModel(opts);
  const prompt = promptIds(opts, tokenizer);
  await checkGenerateSizes(opts, model.config, prompt.length);
  const { generate } = await import('../rollout/sampler.ts');
  // Streaming: with one sample and no --json, text is printed as it grows.
  const stream = !opts.json && opts.n === 1 ? new StreamPrinter(tokenizer) : null;
  const started = performance.now();
  const [samples] = await generate(
    model,
    [prompt],
    {
      n: opts.n,
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK,
      maxTokens: opts.maxTokens,
      seed: opts.seed,
      eosIds,
      stopStrings: opts.stop,
      tokenizer,
      onToken: stream ? (_p, _s, id) => stream.token(id) : undefined,
    },
    (_p, j, s) => printSample(opts, j, s, stream !== null),
  );
  stream?.finish(samples[0].text);
  if (!opts.json) printTiming(samples, performance.now() - started, model.backend.name, stream !== null);
}

/** The model (a folder or a Hub id) and, when a text prompt or the folder has one, its tokenizer and EOS ids. */
async function loadGenerationModel(opts: GenerateOptions) {
  const [{ Qwen2Model }, { getBackend }, tk, { parsePrecision }, hub] = await Promise.all([
    import('../model/qwen2.ts'),
    import('../engine/index.ts'),
    import('../model/tokenizer.ts'),
    import('../engine/precision.ts'),
    import('../hub/snapshot.ts'),
  ]);
  const precision = parsePrecision(opts.precision, '--precision');
  const backend = getBackend(opts.backend);
  opts.model = await hub.resolveModelPath(opts.model, '--model');
  const model = await Qwen2Model.load(opts.model, { backend, precision });
  // A text prompt needs the tokenizer (loadTokenizer fails clearly without one); with ids,
  // a tokenizer is still used for the output text when the folder has one.
  const tokenizer =
    opts.prompt !== undefined || tk.hasTokenizer(opts.model)
      ? tk.loadTokenizer(opts.model, model.config.vocabSize, 'give the prompt as token ids (--prompt-ids) instead')
      : undefined;
  if (opts.stop.length > 0 && !tokenizer) fail(`--stop needs a tokenizer, and ${opts.model} has no tokenizer.json`);
  const eosIds = [...new Set([...tk.eosIdsOf(opts.model), ...(tokenizer?.eosIds ?? [])])];
  return { model, tokenizer, eosIds };
}

/** The samples and their KV cache fit in memory; a response limit past the model's positions is said. */
async function checkGenerateSizes(
  opts: GenerateOptions,
  config: import('../model/config.ts').ModelConfig,
  promptTokens: number,
): Promise<void> {
  const { samplingMemory } = await import('../model/footprint.ts');
  const { checkMemoryFits } = await import('../util/memory.ts');
  const size = {
    samples: opts.n,
    slots: Math.min(64, opts.n), // the sampler's default number of sequences decoded at once
    positions: promptTokens + opts.maxTokens,
    sizedBy: { positions: '--max-tokens', samples: '--n' },
  };
  checkMemoryFits('this generation', samplingMemory(config, size, opts.precision === 'bf16'));
  if (promptTokens + opts.maxTokens > config.maxPositionEmbeddings)
    process.stderr.write(
      `warning: the prompt's ${promptTokens} tokens + --max-tokens ${opts.maxTokens} pass the model's max_position_embeddings ${config.maxPositionEmbeddings} (config.json): later tokens are at positions it was not trained on\n`,
    );
}

/** One finished sample: a JSON object with --json, a headed block when not streaming (streaming prints as it goes). */
function printSample(opts: GenerateOptions, j: number, s: Sample, streaming: boolean): void {
  if (opts.json)
    console.log(
      JSON.stringify({
        index: j,
        ids: s.ids,
        text: s.text ?? null,
        logprobs: s.logprobs,
        finish_reason: s.finishReason,
      }),
    );
  else if (!streaming) {
    console.log(`--- sample ${j} (${s.finishReason}, ${s.ids.length} tokens) ---`);
    console.log(s.text ?? s.ids.join(' '));
  }
}

/** The tokens, time, speed and backend of the call on stderr (and how the streamed sample finished). */
function printTiming(samples: Sample[], ms: number, backend: string, streamed: boolean): void {
  const seconds = ms / 1000;
  const tokens = samples.reduce((a, s) => a + s.ids.length, 0);
  process.stderr.write(
    `[${tokens} tokens in ${seconds.toFixed(2)} s, ${(tokens / seconds).toFixed(1)} tok/s, ${backend} backend` +
      `${streamed ? `, finish: ${samples[0].finishReason}` : ''}]\n`,
  );
}

/** What the prompt options need of a tokenizer. */
interface PromptTokenizer {
  hasChatTemplate: boolean;
  applyChatTemplate(messages: { role: 'system' | 'user'; content: string }[], addGenerationPrompt: boolean): string;
  encode(text: string): number[];
}

/** The prompt's token ids: --prompt-ids as given, or --prompt encoded (through the chat template with --chat). */
function promptIds(opts: GenerateOptions, tokenizer: PromptTokenizer | undefined): number[] {
  if (opts.promptIds !== undefined) return parseIdList(opts.promptIds, '--prompt-ids');
  if (opts.chat && !tokenizer!.hasChatTemplate)
    fail(
      `${opts.model}: tokenizer_config.json has no chat_template; drop --chat (the prompt is then used as it is), or use a chat model`,
    );
  const system = opts.system ? [{ role: 'system' as const, content: opts.system }] : [];
  const text = opts.chat
    ? tokenizer!.applyChatTemplate([...system, { role: 'user', content: opts.prompt! }], true)
    : opts.prompt!;
  const ids = tokenizer!.encode(text);
  if (ids.length === 0) fail('--prompt encodes to no tokens');
  return ids;
}

/**
 * Prints one sample's text as it grows, holding it back while the last token ends inside a
 * multi-byte character; without a tokenizer, the ids.
 */
class StreamPrinter {
  private readonly ids: number[] = [];
  private printed = '';

  constructor(private readonly tokenizer: { decode(ids: number[]): string } | undefined) {}

  token(id: number): void {
    this.ids.push(id);
    if (!this.tokenizer) {
      process.stdout.write(`${this.ids.length > 1 ? ' ' : ''}${id}`);
      return;
    }
    const text = this.tokenizer.decode(this.ids);
    if (text.endsWith('\uFFFD') || !text.startsWith(this.printed)) return;
    process.stdout.write(text.slice(this.printed.length));
    this.printed = text;
  }

  /** The final text may differ from the streamed one (a stop string cut, a trailing partial character). */
  finish(text: string | undefined): void {
    if (text !== undefined && text.startsWith(this.printed)) process.stdout.write(text.slice(this.printed.length));
    process.stdout.write('\n');
  }
}
