/**
 * Test world for the agent: an archive repository served by the real `larch-server` process,
 * OS-like commits published into it (kernel, initramfs, usr/etc, optional markers the health
 * checks look at), and devices: a sysroot per agent in a temporary directory, provisioned with a
 * first deployment, a "booted" symlink (the sysroot package's `bootedRoot` simulation: the
 * running root is the deployment directory the link points to), a boot id file, health checks,
 * and the reboot script that "boots" the default deployment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { commitTree, generateSummary, Repo } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { addRemote, pull } from '@larch/http-pull';
import { createPullVerifier } from '@larch/signing';
import { deploy, initFs, osInit, setImmutable, Sysroot } from '@larch/sysroot';
import { makeTree, type TreeSpec } from '@larch/test-fixtures';
import { Agent, loadConfig, type AgentConfigInput } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../..');
export const AGENT_BIN = path.join(ROOT, 'apps/agent/dist/main.js');
export const SERVER_BIN = path.join(ROOT, 'apps/server/dist/main.js');
export const CLI_BIN = path.join(ROOT, 'apps/cli/dist/main.js');
export const REBOOT_SCRIPT = path.join(here, 'fixtures/reboot.mjs');
export const REF = 'testos/main';
export const STATEROOT = 'testos';

/** Deployments are left mutable so the temporary sysroots can be removed. */
export const CHILD_ENV = { ...process.env, OSTREE_SYSROOT_DEBUG: 'mutable-deployments' };
process.env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';

export interface OsOptions {
  version: string;
  kernel?: string;
  /** Extra files (tree-relative path → content). */
  extra?: Record<string, string>;
  etc?: Record<string, string>;
}

export function osSpec(o: OsOptions): TreeSpec {
  const spec: TreeSpec = {
    'usr/bin/sh': { type: 'file', content: '#!/bin/sh\n', mode: 0o755 },
    'usr/etc/os-release': `PRETTY_NAME="TestOS ${o.version}"\nID=testos\n`,
    'usr/etc/aconfigfile': 'default config\n',
    'usr/lib/modules/6.1.0/vmlinuz': o.kernel ?? 'a kernel\n',
    'usr/lib/modules/6.1.0/initramfs.img': 'an initramfs\n',
    'usr/share/version': `${o.version}\n`,
  };
  for (const [k, v] of Object.entries(o.etc ?? {})) spec[`usr/etc/${k}`] = v;
  for (const [k, v] of Object.entries(o.extra ?? {})) spec[k] = v;
  return spec;
}

/** The publishing side: an archive repo and its larch-server. */
export class Publisher {
  private seq = 0;
  server: ChildProcess | null = null;
  url = '';
  constructor(readonly dir: string) {}
  get repoPath(): string {
    return path.join(this.dir, 'repo');
  }

  async init(): Promise<void> {
    await Repo.init({ path: this.repoPath, mode: 'archive' });
  }

  /** Commit an OS tree on REF and regenerate the summary (with `larch.rollout` when given). */
  async publish(o: OsOptions, rollout?: number, timestamp?: bigint): Promise<string> {
    const tree = path.join(this.dir, `tree-${++this.seq}`);
    await mkdir(tree, { recursive: true });
    await makeTree(tree, osSpec(o));
    const repo = await Repo.open(this.repoPath);
    const r = await commitTree(repo, {
      tree,
      branch: REF,
      subject: `TestOS ${o.version}`,
      timestamp: timestamp ?? 1_700_000_000n + BigInt(this.seq) * 100n,
      metadata: [['version', new Variant('s', o.version)]],
    });
    await rm(tree, { recursive: true, force: true });
    await this.summary(rollout);
    return r.commit;
  }

  async summary(rollout?: number): Promise<void> {
    const repo = await Repo.open(this.repoPath);
    const additionalMetadata: Array<[string, Variant]> =
      rollout === undefined ? [] : [['larch.rollout', new Variant('a{sv}', [[REF, new Variant('u', rollout)]])]];
    await generateSummary(repo, { additionalMetadata });
  }

  /** Start `larch-server --repo=… --port=0` (or with `--port` of a proxy's upstream) and read its URL. */
  async start(): Promise<string> {
    const child = spawn(process.execPath, [SERVER_BIN, `--repo=${this.repoPath}`, '--port=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.server = child;
    const rl = createInterface({ input: child.stdout! });
    // However long a loaded machine takes: a server that exits first fails here, one that
    // hangs runs into the caller's timeout.
    this.url = await new Promise<string>((resolve, reject) => {
      rl.on('line', (l) => {
        const m = /at (http:\/\/\S+)/.exec(l);
        if (m) resolve(m[1]);
      });
      child.once('error', reject);
      child.once('exit', (c) => reject(new Error(`larch-server exited with ${c}`)));
    });
    return this.url;
  }

  async stop(): Promise<void> {
    if (this.server && this.server.exitCode === null) {
      const done = new Promise((r) => this.server!.once('exit', r));
      this.server.kill('SIGTERM');
      await done;
    }
  }
}

/** One device: sysroot, booted link, boot id, health checks, config. */
export class Device {
  readonly sysroot: string;
  readonly bootedLink: string;
  readonly bootIdFile: string;
  readonly healthDir: string;
  readonly stateDir: string;
  readonly configPath: string;
  constructor(readonly dir: string, readonly deviceId: string) {
    this.sysroot = path.join(dir, 'sysroot');
    this.bootedLink = path.join(dir, 'booted');
    this.bootIdFile = path.join(dir, 'boot_id');
    this.healthDir = path.join(dir, 'health');
    this.stateDir = path.join(dir, 'state');
    this.configPath = path.join(dir, 'agent.json');
  }

  /** Initialize the sysroot and deploy+boot the remote's current commit (the factory image). */
  async provision(url: string, extra: Partial<AgentConfigInput> = {}, remoteOptions: Array<[string, string]> = []): Promise<void> {
    mkdirSync(this.sysroot, { recursive: true });
    await initFs(this.sysroot);
    await osInit(this.sysroot, STATEROOT);
    const repo = await Repo.open(path.join(this.sysroot, 'ostree/repo'));
    await addRemote(repo, { name: 'origin', url, gpgVerify: false, set: remoteOptions });
    await pull({ repo: await Repo.open(repo.path), remote: 'origin', refs: [REF], verifier: createPullVerifier({ repoPath: repo.path }) });
    const r = await deploy(this.sysroot, { stateroot: STATEROOT, refspec: `origin:${REF}` });
    symlinkSync(new Sysroot(this.sysroot).deploymentDir(r.deployment), this.bootedLink);
    writeFileSync(this.bootIdFile, `${randomUUID()}\n`);
    this.writeChecks();
    this.writeConfig(url, extra);
  }

  writeChecks(opts: { slow?: number } = {}): void {
    for (const d of ['required.d', 'wanted.d']) mkdirSync(path.join(this.healthDir, d), { recursive: true });
    const sleep = opts.slow ? `sleep ${opts.slow}\n` : '';
    const req = path.join(this.healthDir, 'required.d/10-not-broken');
    writeFileSync(req, `#!/bin/sh\n${sleep}test ! -e "$LARCH_BOOTED_ROOT/usr/share/broken" || { echo "marked broken"; exit 1; }\n`);
    const want = path.join(this.healthDir, 'wanted.d/10-nice');
    writeFileSync(want, `#!/bin/sh\ntest ! -e "$LARCH_BOOTED_ROOT/usr/share/wanted-broken" || { echo "wanted feature broken"; exit 3; }\n`);
    chmodSync(req, 0o755);
    chmodSync(want, 0o755);
  }

  config(url: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput {
    return {
      sysroot: this.sysroot,
      stateroot: STATEROOT,
      remote: { name: 'origin', url, gpgVerify: false },
      ref: REF,
      stateDir: this.stateDir,
      deviceId: this.deviceId,
      bootedRoot: this.bootedLink,
      bootIdFile: this.bootIdFile,
      rebootCommand: [process.execPath, REBOOT_SCRIPT, this.sysroot, this.bootedLink, this.bootIdFile],
      healthChecks: { dir: this.healthDir, checkTimeoutSeconds: 10, confirmTimeoutSeconds: 120, maxBootAttempts: 3 },
      backoff: { initialSeconds: 0.2, maxSeconds: 1 },
      timeouts: { noProgressSeconds: 5, requestSeconds: 30, rebootSeconds: 30 },
      ...extra,
    };
  }

  writeConfig(url: string, extra: Partial<AgentConfigInput> = {}): void {
    writeFileSync(this.configPath, JSON.stringify(this.config(url, extra), null, 2));
  }

  /** Commit the booted link points to. */
  bootedCommit(): string {
    return path.basename(readlinkSync(this.bootedLink)).split('.')[0];
  }

  async remove(): Promise<void> {
    const dep = path.join(this.sysroot, 'ostree/deploy', STATEROOT, 'deploy');
    try {
      for (const n of readdirSync(dep)) setImmutable(path.join(dep, n), false);
    } catch {
      /* nothing deployed */
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}


export interface AgentRun {
  code: number | null;
  signal: string | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

/** Run `larch-agent ARGS…` to completion, collecting its JSON lines. */
export function runAgent(args: string[], opts: { killAfterLines?: number; killOnEvent?: string; killOnTransitionTo?: string; killDelayMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? CHILD_ENV });
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    let killed = false;
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        lines.push({ event: 'text', text: l });
      }
      const last = lines[lines.length - 1];
      const hit =
        (opts.killAfterLines !== undefined && lines.length >= opts.killAfterLines) ||
        (opts.killOnEvent !== undefined && last.event === opts.killOnEvent) ||
        (opts.killOnTransitionTo !== undefined && last.event === 'transition' && last.to === opts.killOnTransitionTo);
      if (!killed && hit) {
        killed = true;
        setTimeout(() => child.kill('SIGKILL'), opts.killDelayMs ?? 0);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }));
  });
}

/**
 * One cycle as `larch-agent run --once` runs it, in this process and with the agent's clock
 * given: for tests of waiting (reboot pending, backoff), where "before the deadline" and "after
 * it" must not depend on how fast the machine runs the agent. The lines are the records the
 * binary would print.
 */
export async function runAgentWithClock(configPath: string, now: () => number): Promise<AgentRun> {
  const lines: Array<Record<string, unknown>> = [];
  const agent = Agent.open(loadConfig(configPath), { now, log: (rec) => lines.push(JSON.parse(JSON.stringify(rec)) as Record<string, unknown>) });
  try {
    await agent.runOnce();
  } finally {
    await agent.close();
  }
  return { code: 0, signal: null, lines, stderr: '' };
}

export function transitions(run: AgentRun): string[] {
  return run.lines.filter((l) => l.event === 'transition').map((l) => `${String(l.from)}>${String(l.to)}`);
}

/** Run `larch …` (the CLI) and return stdout. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
