// Where a scan's time goes, in one process: importing the CLI's bundle, reading the store
// (openStore: every file the checks need), the checks (scanStore and the remedies) and the JSON
// output, timed around the same calls `layergc scan --json` makes (src/app/scan.ts). The scan
// bench prints it beside Node's floor, the reads alone.
// Usage: node bench/scan-phases.mjs <data root>   (after npm run build)
const root = process.argv[2];
const t0 = performance.now();
const { openStore } = await import('../dist/store/index.js');
const { scanStore } = await import('../dist/findings/index.js');
const { addRemedies } = await import('../dist/repair/remedy.js');
const { scanJson } = await import('../dist/app/report.js');
const t1 = performance.now();
const store = await openStore({ dataRoot: root });
const t2 = performance.now();
const { findings, refs } = await scanStore(store);
addRemedies(findings, store, refs, { dataRoot: root });
const t3 = performance.now();
const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
const json = JSON.stringify(scanJson({ header, findings, notes: [] }), null, 2);
const t4 = performance.now();
console.log(JSON.stringify({ importMs: t1 - t0, readMs: t2 - t1, checkMs: t3 - t2, outputMs: t4 - t3, findings: findings.length, jsonBytes: json.length }));
