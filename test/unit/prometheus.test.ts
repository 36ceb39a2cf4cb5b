/**
 * The Prometheus text exposition layergc writes for node_exporter's textfile collector
 * (src/cli/render/prometheus.ts): families, HELP/TYPE, labels, values, escaping, what a purge
 * reports as left to reclaim, and the atomic file write. `promtool check metrics` (Debian's
 * prometheus package) checks the text when it is installed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { purgeMetrics, scanMetrics } from '../../src/cli/render/prometheus.js';
import { writeMetricsFile } from '../../src/cli/metrics-file.js';
import { FINDING_KINDS, type Finding, type FindingKind } from '../../src/findings/types.js';
import { LayergcError, ExitCode } from '../../src/errors.js';
import { VERSION } from '../../src/cli/version.js';

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p));

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format: HELP and TYPE before each family's samples, each family once. */
function parseExposition(text: string): { samples: Sample[]; help: Map<string, string>; type: Map<string, string> } {
  expect(text.endsWith('\n')).toBe(true);
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: Sample[] = [];
  const done = new Set<string>();
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      const [, what, name, rest] = m;
      if (current !== name) {
        expect(done.has(name), `family ${name} appears twice`).toBe(false);
        if (current) done.add(current);
        current = name;
      }
      (what === 'HELP' ? help : type).set(name, rest);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `not a sample line: ${line}`).toBeTruthy();
    const [, name, labelText, value] = m!;
    expect(name, 'a sample outside its family').toBe(current);
    expect(help.has(name) && type.has(name), `${name} has no HELP or TYPE before its samples`).toBe(true);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let lm: RegExpExecArray | null;
    let consumed = 0;
    while (labelText && (lm = re.exec(labelText))) {
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed = re.lastIndex;
    }
    expect(consumed, `bad labels in ${line}`).toBe(labelText?.length ?? 0);
    samples.push({ name, labels, value: Number(value) });
  }
  return { samples, help, type };
}

function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(hits.length, `${name}${JSON.stringify(labels)} matches ${hits.length} samples`).toBeLessThanOrEqual(1);
  return hits[0]?.value;
}

function promtoolCheck(text: string): { code: number | null; out: string } {
  const r = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function finding(kind: FindingKind, bytes: number, reclaimable = true): Finding {
  return { kind, severity: reclaimable ? 'warning' : 'error', paths: [`/x/${kind}`], bytes, reclaimable, reason: 'test', affects: { images: [], containers: [] } };
}

const header = { dataRoot: '/var/lib/docker', driver: 'overlay2', daemonRunning: false };
const times = { started: 1_700_000_000_000, finished: 1_700_000_002_500 };

const findings: Finding[] = [
  finding('removing-orphan', 1000),
  finding('removing-orphan', 24),
  finding('unreferenced-driver-dir', 5000),
  finding('dangling-link', 0),
  finding('stale-write-set', 4096),
  finding('missing-driver-data', 0, false),
  finding('unreferenced-layer', 700, false),
];

describe('scanMetrics', () => {
  const text = scanMetrics(header, findings, times);
  const { samples, help, type } = parseExposition(text);

  it('has HELP and TYPE for every family, all layergc_ prefixed gauges', () => {
    const families = [...new Set(samples.map((s) => s.name))];
    expect(families).toEqual([
      'layergc_info',
      'layergc_daemon_running',
      'layergc_last_run_timestamp_seconds',
      'layergc_last_run_duration_seconds',
      'layergc_findings',
      'layergc_finding_bytes',
      'layergc_reclaimable_bytes',
    ]);
    for (const f of families) {
      expect(f.startsWith('layergc_')).toBe(true);
      expect(help.get(f)).toMatch(/\S/);
      expect(type.get(f)).toBe('gauge');
    }
  });

  it('counts and sizes every kind, 0 for kinds not found, so clean is told from not run', () => {
    expect(samples.filter((s) => s.name === 'layergc_findings').map((s) => s.labels.kind)).toEqual([...FINDING_KINDS]);
    expect(samples.filter((s) => s.name === 'layergc_finding_bytes').map((s) => s.labels.kind)).toEqual([...FINDING_KINDS]);
    for (const k of FINDING_KINDS) {
      const mine = findings.filter((f) => f.kind === k);
      expect(sampleValue(samples, 'layergc_findings', { kind: k })).toBe(mine.length);
      expect(sampleValue(samples, 'layergc_finding_bytes', { kind: k })).toBe(mine.reduce((s, f) => s + f.bytes, 0));
    }
    expect(sampleValue(samples, 'layergc_findings', { kind: 'removing-orphan' })).toBe(2);
    expect(sampleValue(samples, 'layergc_finding_bytes', { kind: 'removing-orphan' })).toBe(1024);
  });

  it('reclaimable bytes count only what purge can remove', () => {
    expect(sampleValue(samples, 'layergc_reclaimable_bytes')).toBe(1000 + 24 + 5000 + 4096);
  });

  it('time, duration, daemon state, version, driver and command', () => {
    expect(sampleValue(samples, 'layergc_last_run_timestamp_seconds')).toBe(1_700_000_003);
    expect(sampleValue(samples, 'layergc_last_run_duration_seconds')).toBe(2.5);
    expect(sampleValue(samples, 'layergc_daemon_running')).toBe(0);
    expect(samples.find((s) => s.name === 'layergc_info')?.labels).toEqual({ data_root: '/var/lib/docker', version: VERSION, driver: 'overlay2', command: 'scan' });
    const running = parseExposition(scanMetrics({ ...header, daemonRunning: true }, [], times)).samples;
    expect(sampleValue(running, 'layergc_daemon_running')).toBe(1);
  });

  it('puts data_root on every sample, so two data roots on one host never collide', () => {
    for (const s of samples) expect(s.labels.data_root).toBe('/var/lib/docker');
  });

  it('escapes label values (quote, backslash, newline)', () => {
    const odd = '/srv/do"ck\\er\nroot';
    const t = scanMetrics({ ...header, dataRoot: odd }, [], times);
    expect(t).toContain('data_root="/srv/do\\"ck\\\\er\\nroot"');
    for (const s of parseExposition(t).samples) expect(s.labels.data_root).toBe(odd);
  });

  it('a clean store: zeros everywhere, still every family', () => {
    const { samples: clean } = parseExposition(scanMetrics(header, [], times));
    expect(clean.filter((s) => s.name === 'layergc_findings').every((s) => s.value === 0)).toBe(true);
    expect(sampleValue(clean, 'layergc_reclaimable_bytes')).toBe(0);
  });

  it.skipIf(!PROMTOOL)('passes promtool check metrics', () => {
    for (const t of [text, scanMetrics({ ...header, dataRoot: 'a"b\\c\nd' }, [], times)]) {
      const r = promtoolCheck(t);
      expect(r.out).toBe('');
      expect(r.code).toBe(0);
    }
  });
});

describe('purgeMetrics', () => {
  it('reports outcomes, reclaimed bytes and what is left to reclaim', () => {
    // removed: the orphans and the write-set (5120 freed); the driver dir failed; the dangling
    // link was skipped
    const text = purgeMetrics(header, findings, { removed: 3, failed: 1, skipped: 1, reclaimedBytes: 1000 + 24 + 4096, dryRun: false }, times);
    const { samples, type, help } = parseExposition(text);
    expect(type.get('layergc_purge_items')).toBe('gauge');
    expect(sampleValue(samples, 'layergc_purge_items', { status: 'removed' })).toBe(3);
    expect(sampleValue(samples, 'layergc_purge_items', { status: 'failed' })).toBe(1);
    expect(sampleValue(samples, 'layergc_purge_items', { status: 'skipped' })).toBe(1);
    expect(sampleValue(samples, 'layergc_purge_items', { status: 'planned' })).toBe(0);
    expect(sampleValue(samples, 'layergc_reclaimed_bytes')).toBe(5120);
    expect(sampleValue(samples, 'layergc_purge_dry_run')).toBe(0);
    // left: the failed driver dir (5000) and the skipped dangling link (0)
    expect(sampleValue(samples, 'layergc_reclaimable_bytes')).toBe(5000);
    // findings are what the run found before removing anything
    expect(sampleValue(samples, 'layergc_findings', { kind: 'removing-orphan' })).toBe(2);
    expect(help.get('layergc_finding_bytes')).toMatch(/purge/);
    expect(samples.find((s) => s.name === 'layergc_info')?.labels.command).toBe('purge');
    if (PROMTOOL) expect(promtoolCheck(text)).toEqual({ code: 0, out: '' });
  });

  it('never reports less than 0 left to reclaim (freed bytes come from free space, which others change too)', () => {
    const t = purgeMetrics(header, findings, { removed: 9, failed: 0, skipped: 0, reclaimedBytes: 1e9, dryRun: false }, times);
    expect(sampleValue(parseExposition(t).samples, 'layergc_reclaimable_bytes')).toBe(0);
  });

  it('a dry run: planned items, nothing reclaimed, everything still reclaimable', () => {
    const t = purgeMetrics(header, findings, { removed: 0, failed: 0, skipped: 1, planned: 4, reclaimedBytes: 0, dryRun: true }, times);
    const { samples } = parseExposition(t);
    expect(sampleValue(samples, 'layergc_purge_items', { status: 'planned' })).toBe(4);
    expect(sampleValue(samples, 'layergc_reclaimed_bytes')).toBe(0);
    expect(sampleValue(samples, 'layergc_purge_dry_run')).toBe(1);
    expect(sampleValue(samples, 'layergc_reclaimable_bytes')).toBe(10120);
  });
});

describe('writeMetricsFile', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(tmpdir(), 'lgc-un-prom-'));
    dirs.push(d);
    return d;
  };

  it('replaces the file by rename (a new inode), leaves no temporary file, mode 0644', async () => {
    const d = tmp();
    const f = path.join(d, 'layergc.prom');
    await writeMetricsFile(f, 'a 1\n');
    const ino = fs.statSync(f).ino;
    await writeMetricsFile(f, 'a 2\n');
    expect(fs.readFileSync(f, 'utf8')).toBe('a 2\n');
    expect(fs.statSync(f).ino).not.toBe(ino);
    expect(fs.statSync(f).mode & 0o777 & ~process.umask()).toBe(0o644 & ~process.umask());
    expect(fs.readdirSync(d)).toEqual(['layergc.prom']);
  });

  it('a reader never sees a partial file while it is rewritten', async () => {
    const d = tmp();
    const f = path.join(d, 'layergc.prom');
    const big = (c: string) => `${`# ${c.repeat(1000)}\n`.repeat(2000)}end ${c}\n`; // ~2 MB
    const versions = new Set([big('a'), big('b')]);
    await writeMetricsFile(f, big('a'));
    let writing = true;
    let reads = 0;
    const bad: string[] = [];
    const reader = (async () => {
      while (writing) {
        const t = await fs.promises.readFile(f, 'utf8');
        reads++;
        if (!versions.has(t)) bad.push(`${t.length} bytes, ends ${JSON.stringify(t.slice(-20))}`);
        // the collector reads only *.prom: no other *.prom may ever show up
        for (const n of await fs.promises.readdir(d)) if (n.endsWith('.prom') && n !== 'layergc.prom') bad.push(`visible: ${n}`);
      }
    })();
    for (let i = 0; i < 40; i++) await writeMetricsFile(f, big(i % 2 ? 'a' : 'b'));
    writing = false;
    await reader;
    expect(bad).toEqual([]);
    expect(reads).toBeGreaterThan(5);
    expect(fs.readdirSync(d)).toEqual(['layergc.prom']);
  });

  it('fails with a LayergcError (exit 2) naming the file, and cleans up, when it cannot write', async () => {
    const d = tmp();
    const f = path.join(d, 'missing-dir', 'layergc.prom');
    const err = await writeMetricsFile(f, 'a 1\n').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayergcError);
    expect((err as LayergcError).exitCode).toBe(ExitCode.USAGE);
    expect((err as Error).message).toContain(`cannot write the metrics file ${f}`);
    // a directory where the file should be: rename fails, the temporary file is removed
    fs.mkdirSync(path.join(d, 'layergc.prom'));
    fs.writeFileSync(path.join(d, 'layergc.prom', 'x'), '');
    await expect(writeMetricsFile(path.join(d, 'layergc.prom'), 'a 1\n')).rejects.toBeInstanceOf(LayergcError);
    expect(fs.readdirSync(d)).toEqual(['layergc.prom']);
  });
});
