// Every error and close code the server can send is documented in the README's tables, and nothing there is stale.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLOSE_CODES, ERROR_CODES } from '../../lib/protocol/index.js';

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
const section = (title: string): string => {
  const start = readme.indexOf(`### ${title}`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf('\n#', start + 4);
  return readme.slice(start, end < 0 ? undefined : end);
};
const firstColumn = (table: string): string[] =>
  table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| code') && !l.startsWith('|---'))
    .map((l) => l.split('|')[1]!.trim().replace(/`/g, ''));

describe('README tables', () => {
  it('document every error code, and only those', () => {
    assert.deepEqual(firstColumn(section('Error codes')).sort(), Object.keys(ERROR_CODES).sort());
  });

  it('document every close code the server sends', () => {
    const documented = new Set(firstColumn(section('Close codes')).map(Number));
    for (const [name, c] of Object.entries(CLOSE_CODES)) assert.ok(documented.has(c.code), `${name} (${c.code}) is in the README`);
  });
});
