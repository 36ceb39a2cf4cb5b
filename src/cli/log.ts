// Log events on stderr: plain lines for people, or one JSON object per event for journald and
// log shippers (--log-format json).
import type { Output } from './output.js';
import { escapeText } from '../escape.js';

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function makeLogger(format: 'text' | 'json', o: Output): Logger {
  const emit =
    (level: 'info' | 'warn' | 'error') =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (format === 'json') {
        o.err(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
      } else {
        const prefix = level === 'error' ? o.ce.red('layergc: ') : level === 'warn' ? o.ce.yellow('layergc: ') : 'layergc: ';
        o.err(`${prefix}${escapeText(msg)}`); // names from disk never forge a line or a terminal sequence
      }
    };
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}
