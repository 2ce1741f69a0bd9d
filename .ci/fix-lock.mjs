// The registry here lacks some other platforms' optional native packages (msgpackr-extract, unrs-resolver
// bindings); npm install leaves them out of the lock and npm ci then refuses it. This adds their entries with
// os/cpu, so npm ci on any platform skips the ones that are not its own. Run it after every npm install.
import fs from 'node:fs';
import { execSync } from 'node:child_process';
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
let out = '';
try { execSync('npm ci --dry-run', { stdio: 'pipe' }); } catch (e) { out = String(e.stderr); }
const missing = [...new Set([...out.matchAll(/Missing: (@?[^@\s]+)@(\S*) from lock file/g)].map((m) => m[1]))];
const platform = (name) => {
  const m = name.match(/(darwin|linux|win32|freebsd|android|openharmony)-(arm64|x64|arm|ia32|loong64|ppc64|riscv64|s390x)/);
  return m ? { os: [m[1]], cpu: [m[2]] } : {};
};
for (const name of missing) {
  // the version the parent asks for
  let version;
  for (const v of Object.values(lock.packages)) { const d = v.optionalDependencies?.[name]; if (d) version = d.replace(/^[\^~]/, ''); }
  lock.packages[`node_modules/${name}`] = { version, ...platform(name), optional: true };
}
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log('added', missing.length);
