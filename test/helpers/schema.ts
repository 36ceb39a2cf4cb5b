/**
 * The published JSON shapes (docs/scan.schema.json for scan and verify, docs/purge.schema.json for
 * purge, docs/explain.schema.json for explain, and df, restore and unlock by their names), compiled once with ajv's draft 2020-12 build. `expectValid` fails a test with ajv's errors.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { expect } from 'vitest';

export type SchemaKind = 'scan' | 'purge' | 'df' | 'restore' | 'explain' | 'unlock';

// ajv is CommonJS: depending on the loader the class is the default export or its `default` member
const Ajv2020 = ((Ajv2020Module as unknown as { default?: unknown }).default ?? Ajv2020Module) as typeof import('ajv/dist/2020.js').default;

export const SCHEMA_FILES: Record<SchemaKind, string> = {
  scan: fileURLToPath(new URL('../../docs/scan.schema.json', import.meta.url)),
  purge: fileURLToPath(new URL('../../docs/purge.schema.json', import.meta.url)),
  df: fileURLToPath(new URL('../../docs/df.schema.json', import.meta.url)),
  restore: fileURLToPath(new URL('../../docs/restore.schema.json', import.meta.url)),
  explain: fileURLToPath(new URL('../../docs/explain.schema.json', import.meta.url)),
  unlock: fileURLToPath(new URL('../../docs/unlock.schema.json', import.meta.url)),
};

let validators: Record<SchemaKind, ValidateFunction> | undefined;

export function loadSchema(kind: SchemaKind): Record<string, any> {
  return JSON.parse(fs.readFileSync(SCHEMA_FILES[kind], 'utf8')) as Record<string, any>;
}

export function validator(kind: SchemaKind): ValidateFunction {
  if (!validators) {
    // ajv's strict mode, every check of it on (strictRequired included)
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    validators = Object.fromEntries((Object.keys(SCHEMA_FILES) as SchemaKind[]).map((k) => [k, ajv.compile(loadSchema(k))])) as Record<SchemaKind, ValidateFunction>;
  }
  return validators[kind];
}

/** The errors of validating `json`, as text; '' when it is valid. */
export function schemaErrors(kind: SchemaKind, json: unknown): string {
  const v = validator(kind);
  if (v(json)) return '';
  return (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`).join('\n');
}

export function expectValid(kind: SchemaKind, json: unknown): void {
  const errors = schemaErrors(kind, json);
  expect(errors, `${kind} output does not match docs/${kind}.schema.json:\n${errors}\n${JSON.stringify(json, null, 2).slice(0, 4000)}`).toBe('');
}
