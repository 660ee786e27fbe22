// Quick, non-throwing detection of a reachable Docker engine, so suites fall back to the native stack without delay.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

type Endpoint = { socketPath: string } | { host: string; port: number };

let detected: Promise<boolean> | undefined;

/**
 * Whether testcontainers can be used: PARLEY_TEST_DOCKER=0 disables Docker, =1 forces it; otherwise
 * DOCKER_HOST or the usual sockets must answer `/_ping` within a second and a half.
 */
export function dockerAvailable(env = process.env): Promise<boolean> {
  detected ??= detect(env);
  return detected;
}

async function detect(env: NodeJS.ProcessEnv): Promise<boolean> {
  if (env.PARLEY_TEST_DOCKER === '0') return false;
  if (env.PARLEY_TEST_DOCKER === '1') return true;
  for (const endpoint of endpoints(env)) {
    if (await answers(endpoint)) return true;
  }
  return false;
}

function endpoints(env: NodeJS.ProcessEnv): Endpoint[] {
  const dockerHost = env.DOCKER_HOST;
  if (dockerHost) {
    try {
      const url = new URL(dockerHost);
      if (url.protocol === 'unix:') return [{ socketPath: url.pathname }];
      if (url.protocol === 'tcp:') return [{ host: url.hostname, port: Number(url.port || 2375) }];
    } catch {
      return [];
    }
    return [];
  }
  const home = homedir();
  return [
    '/var/run/docker.sock',
    join(home, '.docker/run/docker.sock'),
    join(home, '.docker/desktop/docker.sock'),
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'docker.sock') : '',
    join(home, '.colima/default/docker.sock'),
    join(home, '.rd/docker.sock'),
  ].filter((p) => p !== '' && existsSync(p)).map((socketPath) => ({ socketPath }));
}

function answers(endpoint: Endpoint, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    if ('host' in endpoint) {
      // Possibly TLS: a TCP connect is as far as a quick check can go.
      const socket = connect(endpoint);
      socket.setTimeout(timeoutMs, () => { socket.destroy(); resolve(false); });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
      return;
    }
    const req = request({ socketPath: endpoint.socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(false));
    req.end();
  });
}
