// `red download ID [--revision R] [--dataset]`: fetches a Hub model (config, tokenizer, safetensors)
// or dataset (its parquet/jsonl files) into the shared Hugging Face cache ahead of a run, and prints
// the snapshot folder. Honours HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE / HF_HOME and HF_HUB_OFFLINE.
import type { Command } from 'commander';

export function registerDownload(program: Command): void {
  program
    .command('download')
    .description(
      'fetch a Hugging Face model or dataset into the Hugging Face cache (ids are also accepted wherever a path is)',
    )
    .argument('<id>', 'org/name (a dataset may add /path: a file, folder or split)')
    .option('--revision <rev>', "branch, tag or commit (default main, or the id's @rev)")
    .option('--dataset', 'the id names a dataset', false)
    .action(async (id: string, opts: { revision?: string; dataset: boolean }) => {
      const { downloadById } = await import('../hub/snapshot.ts');
      const snap = await downloadById(id, opts.dataset ? 'dataset' : 'model', opts.revision);
      process.stderr.write(`${id}: ${snap.files.length} files at commit ${snap.commit}\n`);
      process.stdout.write(`${snap.dir}\n`);
    });
}
