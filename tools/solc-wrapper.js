#!/usr/bin/env node
// A `solc`-compatible executable backed by the official npm `solc` module (solc-js).
//
// Brownie and py-solc-x look for compilers as `solc-v<version>` under py-solc-x's folder and call
// them as `solc --version` and `solc --standard-json [--allow-paths P] < input.json`. Nothing may
// be downloaded here, so `make install` (tools/install_solc.py) puts a launcher for this script
// there. We do not use the npm `solcjs` CLI: it prints a stray `>>>` line before the JSON and
// rejects `--allow-paths`.
'use strict';
const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const solc = require(require.resolve('solc', { paths: [REPO, process.cwd()] }));

function writeSync(fd, text) {
  // Synchronous output: process.stdout.write may be cut off when the process exits.
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, searchPaths: [], files: [] };
  const withValue = new Set(['--allow-paths', '--base-path', '--include-path', '--evm-version',
    '--output-dir', '-o', '--optimize-runs', '--remappings']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    let value = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    if (withValue.has(name) && value === undefined) value = argv[++i];
    if (name === '--version' || name === '-v') opts.version = true;
    else if (name === '--standard-json') opts.standardJson = true;
    else if (name === '--allow-paths') opts.searchPaths.push(...String(value).split(','));
    else if (name === '--base-path' || name === '--include-path') opts.searchPaths.push(value);
    else if (withValue.has(name)) { /* accepted and ignored */ }
    else if (!a.startsWith('-')) opts.files.push(a);
  }
  return opts;
}

function makeImportReader(searchPaths) {
  const roots = [process.cwd(), ...searchPaths.filter(Boolean), path.join(REPO, 'node_modules'), REPO];
  return function readFile(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((r) => path.resolve(r, importPath));
    for (const p of candidates) {
      try {
        if (fs.statSync(p).isFile()) return { contents: fs.readFileSync(p, 'utf8') };
      } catch (e) { /* try the next root */ }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    writeSync(1, `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    writeSync(2, 'This solc wrapper supports only --version and --standard-json (input on stdin).\n');
    return 1;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportReader(opts.searchPaths) });
  writeSync(1, output + '\n');
  return 0;
}

process.exitCode = main();
