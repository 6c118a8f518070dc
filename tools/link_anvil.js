#!/usr/bin/env node
// Prints the path of the native anvil binary that npm installed for this platform
// (@foundry-rs/anvil-<os>-<arch>). We link it into .venv/bin so brownie's `development`
// network (cmd: anvil) and `fedchain chain` run it directly, without the npm JS shim, so that
// stopping the process really stops anvil.
'use strict';
const path = require('path');
const os = { linux: 'linux', darwin: 'darwin', win32: 'win32' }[process.platform];
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
const pkg = `@foundry-rs/anvil-${os}-${arch}`;
try {
  const dir = path.dirname(require.resolve(`${pkg}/package.json`, { paths: [path.resolve(__dirname, '..')] }));
  console.log(path.join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil'));
} catch (e) {
  console.error(`error: npm package ${pkg} is missing; run \`npm ci\` (make install)`);
  process.exit(1);
}
