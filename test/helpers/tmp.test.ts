// tempDir's folders must go when the test process ends, however it ends short of a signal:
// normally, by process.exit, or on an uncaught error (what a failing test file does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const helper = fileURLToPath(new URL('./tmp.ts', import.meta.url));

test('tempDir: the folder and what was written in it are gone once the process exits', () => {
  for (const ending of ['', 'process.exit(3);', "throw new Error('a failing test');"]) {
    const script =
      `import { writeFileSync } from 'node:fs';\nimport { tempDir } from ${JSON.stringify(helper)};\n` +
      `const dir = tempDir('red-tmp-test-');\nwriteFileSync(dir + '/f', 'x');\nconsole.log(dir);\n${ending}`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const dir = r.stdout.trim();
    assert.match(dir, /red-tmp-test-/, r.stderr);
    assert.ok(!existsSync(dir), `${dir} left behind (${ending || 'normal exit'})`);
  }
});
