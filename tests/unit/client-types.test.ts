// `parley/client` has types an app gets through the package's exports: the README's example and the consumer files in
// tests/fixtures/sdk-consumer type-check against the built declarations (dist/lib/client/*.d.ts, `npm run build`),
// resolved by package name as an app resolves them (node16 for Node, bundler for a browser bundle).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = join(root, 'tests/fixtures/sdk-consumer');

const node16: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16,
  lib: ['lib.es2023.d.ts'], types: ['node'], strict: true, noEmit: true, skipLibCheck: true,
};
const bundler: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'], types: [], strict: true, noEmit: true, skipLibCheck: true,
};

/** The diagnostics of compiling `files` (paths under the fixture directory; `virtual` ones held in memory). */
function typeCheck(options: ts.CompilerOptions, files: string[], virtual: Record<string, string> = {}): string[] {
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => f in virtual || fileExists.call(host, f);
  host.readFile = (f) => virtual[f] ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) =>
    f in virtual ? ts.createSourceFile(f, virtual[f]!, lang) : getSourceFile.call(host, f, lang, ...rest);
  const program = ts.createProgram(files, options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

/** Where `specifier` resolves to, for a file in the fixture directory. */
function resolved(specifier: string, options: ts.CompilerOptions): string | undefined {
  const from = join(fixtures, 'app.ts');
  const mode = options.moduleResolution === ts.ModuleResolutionKind.Node16 ? ts.ModuleKind.ESNext : undefined;
  const r = ts.resolveModuleName(specifier, from, options, ts.sys, undefined, undefined, mode);
  return r.resolvedModule?.resolvedFileName;
}

describe('parley/client types, as an app imports them', () => {
  it('the exports map has a types condition next to every entry, and each declaration file is built', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    const entries = [
      ...Object.values(pkg.exports['./client'] as Record<string, unknown>),
      pkg.exports['./client/browser'],
    ] as Array<{ types?: string; default?: string }>;
    for (const e of entries) {
      assert.equal(Object.keys(e)[0], 'types', `types comes first (conditions match in order): ${JSON.stringify(e)}`);
      assert.equal(e.types, e.default?.replace(/\.js$/, '.d.ts'));
      assert.ok(existsSync(join(root, e.types!)), `${e.types} is built`);
    }
  });

  it('resolves to the Node entry\'s declarations under node16 and to the browser entry\'s under bundler', () => {
    assert.equal(resolved('parley/client', node16), join(root, 'dist/lib/client/node.d.ts'));
    assert.equal(resolved('parley/client', bundler), join(root, 'dist/lib/client/index.d.ts'));
    assert.equal(resolved('parley/client/browser', node16), join(root, 'dist/lib/client/index.d.ts'));
  });

  it('the README\'s example type-checks as a Node app', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Client SDK'));
    const example = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(example !== undefined && example.includes("from 'parley/client'"), 'the README has the example');
    const file = join(fixtures, 'readme-example.ts');
    assert.deepEqual(typeCheck(node16, [file], { [file]: example }), []);
  });

  it('a Node app and a browser app type-check, and the types refuse what the SDK would', () => {
    assert.deepEqual(typeCheck(node16, [join(fixtures, 'node-app.ts')]), []);
    assert.deepEqual(typeCheck(bundler, [join(fixtures, 'browser-app.ts')]), []);
  });
});
