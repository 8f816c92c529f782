// The tokenizer wrapper on a hand-built byte-level BPE: ids worked out by hand from its merges,
// the ChatML template rendered with add_generation_prompt, EOS ids and vocabulary checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer, Tokenizer, eosIdsOf } from '../../src/model/tokenizer.ts';
import { RedError } from '../../src/util/errors.ts';
import { TINY, tinyTokenizerFiles, writeTinyTokenizer } from './tiny-tokenizer.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

test('BPE encode applies merges in rank order, decode inverts it', () => {
  const tok = new Tokenizer(tinyTokenizerFiles());
  // "hello" → h e l l o → (h e) l l o → he (l l) o → (he ll) o = [hell, o];
  // " world" → Ġ w o r l d → (Ġ w) o r l d.
  const o = 'o'.charCodeAt(0),
    r = 'r'.charCodeAt(0),
    l = 'l'.charCodeAt(0),
    d = 'd'.charCodeAt(0);
  assert.deepEqual(tok.encode('hello world'), [TINY.hell, o, TINY.spaceW, o, r, l, d]);
  assert.equal(tok.decode([TINY.hell, o, TINY.spaceW, o, r, l, d]), 'hello world');
  // Non-ASCII text round-trips through byte-level tokens (é = 0xC3 0xA9).
  assert.deepEqual(tok.encode('é'), [0xc3, 0xa9]);
  assert.equal(tok.decode([0xc3, 0xa9]), 'é');
  assert.equal(tok.decode([]), '');
});

test('special tokens: kept whole when encoding, dropped when decoding', () => {
  const tok = new Tokenizer(tinyTokenizerFiles());
  assert.deepEqual(tok.encode('<|im_end|>he'), [TINY.imEnd, TINY.he]);
  assert.equal(tok.decode([TINY.he, TINY.imEnd]), 'he');
  assert.equal(tok.decode([TINY.he, TINY.imEnd], false), 'he<|im_end|>');
});

test('chat template with add_generation_prompt, then encoded', () => {
  const tok = new Tokenizer(tinyTokenizerFiles());
  const text = tok.applyChatTemplate([{ role: 'user', content: 'hi' }], true);
  assert.equal(text, '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'hi' }], false), '<|im_start|>user\nhi<|im_end|>\n');
  const ids = tok.encode(text);
  const b = (s: string) => [...Buffer.from(s)];
  assert.deepEqual(ids, [TINY.imStart, ...b('user\nhi'), TINY.imEnd, ...b('\n'), TINY.imStart, ...b('assistant\n')]);
});

// The structure of Qwen2.5-Instruct's template (default system prompt, loop.first, tools branch).
const QWEN_STYLE = `{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}{{- '<|im_end|>\\n' }}
{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}{%- endif %}
{%- for message in messages %}{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`;

test('a Qwen2.5-style template: default system prompt unless one is given', () => {
  const f = tinyTokenizerFiles();
  const tok = new Tokenizer({ ...f, tokenizerConfig: { ...f.tokenizerConfig, chat_template: QWEN_STYLE } });
  assert.equal(
    tok.applyChatTemplate([{ role: 'user', content: '1+1?' }]),
    '<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    tok.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hi' },
    ]),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  );
  const none = new Tokenizer({ ...f, tokenizerConfig: { eos_token: '<|im_end|>' } });
  assert.equal(none.hasChatTemplate, false);
  assert.throws(
    () => none.applyChatTemplate([{ role: 'user', content: 'hi' }]),
    (e: unknown) => e instanceof RedError && /no chat_template/.test(e.message),
  );
});

test('EOS ids: generation_config list ∪ tokenizer_config eos_token; number form', () => {
  const f = tinyTokenizerFiles();
  assert.deepEqual(new Tokenizer(f).eosIds, [TINY.endoftext, TINY.imEnd]);
  assert.deepEqual(new Tokenizer({ ...f, generationConfig: { eos_token_id: TINY.endoftext } }).eosIds, [
    TINY.endoftext,
    TINY.imEnd,
  ]);
  assert.deepEqual(new Tokenizer({ ...f, generationConfig: {} }).eosIds, [TINY.imEnd]);
  assert.throws(() => new Tokenizer({ ...f, generationConfig: { eos_token_id: 'x' } }), RedError);
});

test('loadTokenizer: folder without tokenizer, vocabulary larger than the embedding', () => {
  const dir = tempDir('red-tok-');
  assert.throws(
    () => loadTokenizer(dir),
    (e: unknown) => e instanceof RedError && /no tokenizer\.json/.test(e.message),
  );
  writeTinyTokenizer(dir);
  const tok = loadTokenizer(dir, TINY.vocab);
  assert.equal(tok.vocabSize, TINY.vocab);
  assert.throws(
    () => loadTokenizer(dir, 200),
    (e: unknown) => e instanceof RedError && /ids up to 262.*only 200 rows/.test(e.message),
  );
  assert.deepEqual(eosIdsOf(dir), [TINY.imEnd, TINY.endoftext]);
});

test('eosIdsOf reads the fixture generation_config.json', () => {
  const dir = fixturePath('qwen2-tiny-tied');
  assert.deepEqual(eosIdsOf(dir), [2]);
});
