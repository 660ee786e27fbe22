// Finds or builds the server binaries the native stack runs, cached under <cache>/bin/<name>-<version>/.
import { chmod, cp, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { StackError, type StackErrorCode } from './errors.js';
import { withLock } from './lock.js';
import {
  FERRETDB_VERSION, JAEGER_VERSION, K6_VERSION, KUSTOMIZE_VERSION, MAILPIT_VERSION, NATS_SERVER_VERSION, stackSettings, type StackSettings,
} from './settings.js';
import { findExecutable, isExecutable, run } from './util.js';

const GO_FALLBACK_DIRS = ['/usr/local/go/bin'];
const APT_DIRS = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/opt/homebrew/bin'];

export async function ensureNatsServer(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'nats-server', NATS_SERVER_VERSION, async (go, outDir) => {
    await run(go, ['install', `github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}`], { env: goEnv({ GOBIN: outDir }) });
  });
}

export async function ensureK6(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'k6', K6_VERSION, async (go, outDir) => {
    await run(go, ['install', `go.k6.io/k6@${K6_VERSION}`], { env: goEnv({ GOBIN: outDir }) });
  });
}

/** kustomize, for the test that renders deploy/k8s (`kustomize build`) and checks what it produces. */
export async function ensureKustomize(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'kustomize', KUSTOMIZE_VERSION, async (go, outDir) => {
    await run(go, ['install', `sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}`], { env: goEnv({ GOBIN: outDir }) });
  });
}

export async function ensureMailpit(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'mailpit', MAILPIT_VERSION, async (go, outDir) => {
    await run(go, ['install', `github.com/axllent/mailpit@${MAILPIT_VERSION}`], { env: goEnv({ GOBIN: outDir }) });
  });
}

/**
 * FerretDB cannot be `go install`ed: its embedded build/version/version.txt is empty in the module
 * and the binary panics at start. Build from a writable copy of the module with the file filled in.
 */
export async function ensureFerretdb(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'ferretdb', FERRETDB_VERSION, async (go, outDir) => {
    const env = goEnv({});
    const src = await moduleCopy(go, settings, log, 'github.com/FerretDB/FerretDB', FERRETDB_VERSION, 'ferretdb');
    await writeFile(join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
    await run(go, ['build', '-buildvcs=false', '-trimpath', '-o', join(outDir, 'ferretdb'), './cmd/ferretdb'], { cwd: src, env });
  });
}

/**
 * Jaeger cannot be `go install`ed either: its module has a replace directive. Build ./cmd/jaeger (Jaeger v2, an
 * OpenTelemetry Collector distribution) inside a writable copy of the module (several minutes cold; cached).
 */
export async function ensureJaeger(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureBuilt(settings, log, 'jaeger', JAEGER_VERSION, async (go, outDir) => {
    const src = await moduleCopy(go, settings, log, 'github.com/jaegertracing/jaeger', JAEGER_VERSION, 'jaeger');
    log.info({ binary: 'jaeger', src }, 'compiling jaeger (several minutes on a small machine)');
    await run(go, ['build', '-buildvcs=false', '-trimpath', '-o', join(outDir, 'jaeger'), './cmd/jaeger'], { cwd: src, env: goEnv({}) });
  });
}

/** A writable copy of a module from the module cache, at <cache>/src/<name>-<version>. */
async function moduleCopy(go: string, settings: StackSettings, log: Logger, module: string, version: string, name: string): Promise<string> {
  const mod = `${module}@${version}`;
  log.info({ module: mod }, 'downloading module source');
  const { stdout } = await run(go, ['mod', 'download', '-json', mod], { cwd: settings.cacheDir, env: goEnv({}) });
  const moduleDir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!moduleDir) throw new Error(`go mod download ${mod} reported no directory:\n${stdout}`);
  const src = join(settings.cacheDir, 'src', `${name}-${version}`);
  await rm(src, { recursive: true, force: true });
  await mkdir(join(settings.cacheDir, 'src'), { recursive: true });
  await cp(moduleDir, src, { recursive: true });
  await makeWritable(src); // the module cache is read-only
  return src;
}

/** Debian's redis-server; installed with apt-get when missing and we are root. */
export async function ensureRedis(log: Logger, settings = stackSettings()): Promise<string> {
  const find = (): Promise<string | undefined> => findExecutable('redis-server', APT_DIRS);
  return ensureAptPackage(settings, log, {
    pkg: 'redis-server', code: 'REDIS_MISSING', find,
    hint: 'redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`, '
      + 'macOS: `brew install redis`), or point Parley at a Redis you run with REDIS_URL, or run `docker compose up`.',
  });
}

/** Debian's Prometheus (2.42 on Debian 12), for the metrics e2e test; installed with apt-get when missing and we are root. */
export async function ensurePrometheus(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureAptPackage(settings, log, {
    pkg: 'prometheus', code: 'PROMETHEUS_MISSING', find: () => findExecutable('prometheus', APT_DIRS),
    hint: 'prometheus was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install -y prometheus`, '
      + 'macOS: `brew install prometheus`).',
  });
}

export interface AptPackage {
  pkg: string;
  code: StackErrorCode;
  /** Finds what the package installs (a binary's path); undefined when it is missing. */
  find(): Promise<string | undefined>;
  /** The error message when it is missing and cannot be installed here. */
  hint: string;
}

/** What `p.find()` finds, after installing `p.pkg` with apt-get (once, under a lock) when it is missing and we are root. */
export async function ensureAptPackage(settings: StackSettings, log: Logger, p: AptPackage): Promise<string> {
  const found = await p.find();
  if (found) return found;
  const apt = await findExecutable('apt-get', ['/usr/bin']);
  if (!apt || process.getuid?.() !== 0) throw new StackError(p.code, p.hint);
  await mkdir(join(settings.cacheDir, 'locks'), { recursive: true });
  return withLock(join(settings.cacheDir, 'locks', `${p.pkg}-apt`), log, async () => {
    const again = await p.find();
    if (again) return again;
    log.info({ package: p.pkg }, 'installing with apt-get (one-time)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = ['install', '-y', '--no-install-recommends', p.pkg];
    try {
      await run(apt, install, { env });
    } catch {
      try {
        // A fresh machine often has no package lists yet.
        await run(apt, ['update'], { env });
        await run(apt, install, { env });
      } catch (err) {
        throw new StackError(p.code, `apt-get could not install ${p.pkg}: ${(err as Error).message}`, { cause: err });
      }
    }
    const installed = await p.find();
    if (!installed) throw new StackError(p.code, `apt-get installed ${p.pkg} but it was not found`);
    log.info({ package: p.pkg }, 'installed with apt-get');
    return installed;
  });
}

export async function findGo(settings: StackSettings): Promise<string | undefined> {
  if (settings.goBinary) return (await isExecutable(settings.goBinary)) ? settings.goBinary : undefined;
  return findExecutable('go', GO_FALLBACK_DIRS);
}

/** Path of a cached binary, built once under a lock into a temporary dir and renamed into place. */
async function ensureBuilt(
  settings: StackSettings,
  log: Logger,
  name: string,
  version: string,
  build: (go: string, outDir: string) => Promise<void>,
): Promise<string> {
  const dir = join(settings.cacheDir, 'bin', `${name}-${version}`);
  const bin = join(dir, name);
  if (await isExecutable(bin)) return bin;
  await mkdir(join(settings.cacheDir, 'locks'), { recursive: true });
  return withLock(join(settings.cacheDir, 'locks', `${name}-${version}`), log, async () => {
    if (await isExecutable(bin)) return bin; // built by whoever held the lock before us
    const go = await findGo(settings);
    if (!go) {
      throw new StackError('GO_MISSING',
        `${name} ${version} is not in the cache (${dir}) and building it needs the Go toolchain, which `
        + (settings.goBinary ? `is not at PARLEY_GO=${settings.goBinary}. `
          : 'was found neither on PATH nor at /usr/local/go/bin/go (set PARLEY_GO to use another). ')
        + 'Install Go from https://go.dev/dl/, or point Parley at servers you already run with '
        + 'NATS_URL, REDIS_URL and MONGO_URL, or run `docker compose up`.');
    }
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const started = Date.now();
    log.info({ binary: name, version, dir }, 'building binary (one-time, cached)');
    // Some builds take minutes (Jaeger): say now and then that it is still going.
    const progress = setInterval(() => log.info({ binary: name, version, s: Math.round((Date.now() - started) / 1000) }, 'still building'), 30_000);
    try {
      await build(go, tmp);
      if (!(await isExecutable(join(tmp, name)))) throw new Error(`the build produced no ${name} binary`);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw new StackError('BUILD_FAILED', `building ${name} ${version} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearInterval(progress);
    }
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    log.info({ binary: name, version, ms: Date.now() - started }, 'binary built');
    return bin;
  });
}

function goEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // Pure-Go builds: a fresh machine may have no C compiler, and none of these servers needs cgo.
  return { ...process.env, CGO_ENABLED: '0', ...extra };
}

async function makeWritable(root: string): Promise<void> {
  await chmod(root, 0o755);
  for (const entry of await readdir(root, { recursive: true })) {
    const path = join(root, entry);
    const st = await stat(path);
    await chmod(path, st.mode | 0o200);
  }
}
