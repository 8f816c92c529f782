// Text in and out the Hugging Face way: a model folder's tokenizer.json + tokenizer_config.json
// through @huggingface/tokenizers, EOS ids from generation_config.json / tokenizer_config.json,
// and chat prompts rendered with the model's own Jinja `chat_template` (@huggingface/jinja).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail } from '../util/errors.ts';

/** One chat turn, as chat templates expect it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * The minimum the sampler needs to turn ids into text (stop strings, `Sample.text`). `Tokenizer`
 * implements it; a task may supply its own (e.g. a tiny character-level tokenizer).
 */
export interface TokenDecoder {
  /** Text of `ids`; special tokens (EOS, chat markers) are left out. */
  decode(ids: readonly number[]): string;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    fail(`${file}: invalid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${file}: expected a JSON object`);
  return value as Json;
}

/** A special token in tokenizer_config.json is either a string or an AddedToken object {content}. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as Json).content === 'string') {
    return (value as Json).content as string;
  }
  return undefined;
}

/** eos_token_id may be a number or a list of numbers (Qwen2.5-Instruct: [151645, 151643]). */
function idList(value: unknown, where: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const v of list) {
    if (!Number.isInteger(v) || (v as number) < 0)
      fail(`${where}: expected a token id or a list of token ids, got ${JSON.stringify(value)}`);
  }
  return list as number[];
}

export interface TokenizerFiles {
  /** Parsed tokenizer.json. */
  tokenizerJson: Json;
  /** Parsed tokenizer_config.json ({} when absent). */
  tokenizerConfig: Json;
  /** Parsed generation_config.json ({} when absent). */
  generationConfig?: Json;
  /** Where these came from, for error messages. */
  source?: string;
}

export class Tokenizer implements TokenDecoder {
  private readonly hf: HfTokenizer;
  private readonly template: Template | null;
  private readonly source: string;
  /** Ids that end a generation: generation_config's eos_token_id ∪ tokenizer_config's eos_token. */
  readonly eosIds: number[];
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** One more than the largest id the tokenizer can produce (vocabulary plus added tokens). */
  readonly vocabSize: number;

  constructor(files: TokenizerFiles) {
    this.source = files.source ?? 'tokenizer.json';
    try {
      this.hf = new HfTokenizer(files.tokenizerJson, files.tokenizerConfig);
    } catch (err) {
      fail(`${this.source}: cannot build the tokenizer (${(err as Error).message})`);
    }
    const cfg = files.tokenizerConfig;
    this.bosToken = tokenContent(cfg.bos_token);
    this.eosToken = tokenContent(cfg.eos_token);
    const eos = new Set(idList(files.generationConfig?.eos_token_id, 'generation_config.json eos_token_id'));
    if (this.eosToken !== undefined) {
      const id = this.hf.token_to_id(this.eosToken);
      if (id === undefined)
        fail(`tokenizer_config.json eos_token "${this.eosToken}" is not in the vocabulary of ${this.source}`);
      eos.add(id);
    }
    this.eosIds = [...eos].sort((a, b) => a - b);
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const tmpl = cfg.chat_template;
    // Some configs hold a list of named templates [{name, template}]; take "default".
    let source: string | null = null;
    if (typeof tmpl === 'string') source = tmpl;
    else if (Array.isArray(tmpl)) {
      const named = tmpl.find((t) => (t as Json).name === 'default') as Json | undefined;
      if (named && typeof named.template === 'string') source = named.template;
    }
    try {
      this.template = source === null ? null : new Template(source);
    } catch (err) {
      fail(`tokenizer_config.json chat_template does not parse: ${(err as Error).message}`);
    }
  }

  /** Token ids of `text`. Chat prompts are encoded without added BOS/EOS, as transformers does. */
  encode(text: string, addSpecialTokens = false): number[] {
    return this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** The prompt text of `messages` through the model's chat_template (add_generation_prompt appends the assistant header). */
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (this.template === null)
      fail(
        `${this.source}: tokenizer_config.json has no chat_template to build the prompt with; use a chat (instruct) model, or add its chat_template`,
      );
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    });
  }

  /** Fails when the tokenizer can emit ids outside the model's embedding (V rows). */
  checkFits(modelVocab: number): void {
    if (this.vocabSize > modelVocab) {
      fail(
        `${this.source}: the tokenizer has ids up to ${this.vocabSize - 1}, but the model's embedding has only ${modelVocab} rows; tokenizer and model do not match`,
      );
    }
  }
}

/**
 * The tokenizer of a model folder. Fails with a clear message when the folder has no
 * tokenizer.json (`missingFix`: the command's way around it), or (given modelVocab) when its ids
 * do not fit the model's embedding.
 */
export function loadTokenizer(
  dir: string,
  modelVocab?: number,
  missingFix = 'copy the tokenizer files (tokenizer.json, tokenizer_config.json) of the model it came from into it',
): Tokenizer {
  const tokFile = path.join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) fail(`${dir} has no tokenizer.json; ${missingFix}`);
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const genFile = path.join(dir, 'generation_config.json');
  const tok = new Tokenizer({
    tokenizerJson: readJson(tokFile),
    tokenizerConfig: existsSync(cfgFile) ? readJson(cfgFile) : {},
    generationConfig: existsSync(genFile) ? readJson(genFile) : {},
    source: tokFile,
  });
  if (modelVocab !== undefined) tok.checkFits(modelVocab);
  return tok;
}

/** True when the folder has a tokenizer (prompts may be text). */
export function hasTokenizer(dir: string): boolean {
  return existsSync(path.join(dir, 'tokenizer.json'));
}

/** EOS ids of a model folder without a tokenizer: generation_config.json, else config.json. */
export function eosIdsOf(dir: string): number[] {
  for (const name of ['generation_config.json', 'config.json']) {
    const file = path.join(dir, name);
    if (!existsSync(file)) continue;
    const ids = idList(readJson(file).eos_token_id, `${file} eos_token_id`);
    if (ids.length > 0) return ids;
  }
  return [];
}
