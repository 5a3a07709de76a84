// The data listener's certificate and key, read and checked as a pair before anything
// uses them (a half-written rotation must never reach a handshake), and a watcher that
// notices when ops or Kubernetes replace the files on disk.
import { createPrivateKey, createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ServerTlsFiles {
  cert: string;
  key: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
}

export interface ServerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** SHA-256 fingerprint of the leaf certificate: safe to log */
  fingerprint: string;
  serial: string;
  validTo: string;
  /** notAfter as Unix seconds (what /metrics reports) */
  notAfter: number;
  /** identifies the exact cert+key pair, to skip a swap when nothing changed */
  digest: string;
  /** whether the certificate is valid for `host` (a DNS name or an IP address) */
  names(host: string): boolean;
}

/** Reads both files and checks that they parse and belong together; throws a readable Error. */
export function readServerTls(files: ServerTlsFiles): ServerTlsMaterial {
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`server.tls.cert: not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`server.tls.key: not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error('server.tls: the key does not belong to the certificate');
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  const names = (host: string): boolean => (isIP(host) ? x509.checkIP(host) : x509.checkHost(host, { subject: 'never' })) !== undefined;
  const notAfter = Math.floor(x509.validToDate.getTime() / 1000);
  return { cert, key, minVersion: files.minVersion, fingerprint: x509.fingerprint256, serial: x509.serialNumber, validTo: x509.validTo, notAfter, digest, names };
}

/**
 * Calls `onChange` (debounced) when anything changes in the folders holding the files.
 * Folders, not files: editors and Kubernetes replace files by rename (a Secret volume
 * swaps its `..data` symlink), which a watch on the old file would never see.
 */
export function watchTlsFiles(files: ServerTlsFiles, onChange: () => void, debounceMs = 200): { close(): void } {
  const dirs = new Set([dirname(files.cert), dirname(files.key)]);
  const names = new Set([basename(files.cert), basename(files.key), '..data']);
  let timer: NodeJS.Timeout | undefined;
  const fire = (filename: string | Buffer | null) => {
    if (filename !== null && !names.has(filename.toString())) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    try {
      const w = watch(dir, { persistent: false }, (_event, filename) => fire(filename));
      // A folder that disappears (volume unmounted) just ends the watch.
      w.on('error', () => w.close());
      watchers.push(w);
    } catch {
      // No watch (folder missing or no inotify): SIGHUP and /admin/reload still reload.
    }
  }
  return {
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
