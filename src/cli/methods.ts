// `red methods [--json]`: every preset (the paper's methods) with the algorithm options it sets,
// then every option with its default, so a user sees what `luffy` or `red-II` means without the code.
import type { Command } from 'commander';

export function registerMethods(program: Command): void {
  program
    .command('methods')
    .description('list the method presets and the algorithm options each one sets')
    .option('--json', 'print JSON: each preset with the options it sets and its full resolved options', false)
    .action(async (opts: { json: boolean }) => {
      const rl = await import('../rl/options.ts');
      const defaults = rl.flattenOptions(rl.parseAlgorithmOptions({}));
      const descriptions = rl.optionDescriptions();
      const presets = rl.PRESET_NAMES.map((name) => ({
        name,
        description: rl.PRESETS[name].description,
        sets: rl.PRESETS[name].sets,
        options: rl.resolvePreset(name),
      }));
      if (opts.json) {
        const options = Object.keys(defaults).map((key) => ({
          key,
          default: defaults[key],
          description: descriptions[key] ?? '',
        }));
        console.log(JSON.stringify({ presets, options }, null, 2));
        return;
      }
      const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
      const width = Math.max(...presets.map((p) => p.name.length)) + 2;
      const lines = ['Method presets (options each sets; everything else keeps the default listed below):', ''];
      for (const p of presets) {
        lines.push(`${p.name.padEnd(width)}${p.description}`);
        const set = Object.entries(rl.flattenOptions(p.sets)).map(([k, v]) => `${k}=${show(v)}`);
        lines.push(`${' '.repeat(width)}${set.length ? set.join('  ') : '(defaults only)'}`);
      }
      lines.push('', 'Algorithm options (config group `algorithm`), default, meaning:', '');
      const keyWidth = Math.max(...Object.keys(defaults).map((k) => k.length)) + 2;
      const valueWidth = Math.max(...Object.values(defaults).map((v) => show(v).length)) + 2;
      for (const [key, value] of Object.entries(defaults)) {
        lines.push(`  ${key.padEnd(keyWidth)}${show(value).padEnd(valueWidth)}${descriptions[key] ?? ''}`);
      }
      console.log(lines.join('\n'));
    });
}
