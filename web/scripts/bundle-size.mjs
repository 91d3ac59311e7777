// Reports the gzipped JavaScript each entry point loads before anything else happens,
// and fails when a budget is exceeded:
//   - public pages (prerendered HTML): ≤ 50 KB gzipped; most ship none;
//   - the app shell (200.html, which /app and the account pages start from): ≤ 150 KB;
//   - GraphiQL (build/graphiql/, the server's explorer page) in no app chunk at all.
// "Initial" = the <script>/modulepreload files named in the HTML plus their static
// imports (Vite's manifest), not lazily loaded route chunks.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUILD = 'build';
const BUDGET = { public: 50 * 1024, shell: 150 * 1024 };

if (!existsSync(BUILD)) {
  console.error('bundle-size: no build/ directory; run `npm run build` first');
  process.exit(1);
}

const gz = new Map();
function gzSize(file) {
  if (!gz.has(file)) gz.set(file, gzipSync(readFileSync(file)).length);
  return gz.get(file);
}

function htmlFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === '_app' ? [] : htmlFiles(p);
    return name.endsWith('.html') ? [p] : [];
  });
}

// Static import graph of the client chunks, read from the JS itself (import ... from "./x.js").
function staticImports(file) {
  const src = readFileSync(file, 'utf8');
  const out = [];
  for (const m of src.matchAll(/(?:import|export)\s*(?:[^'"()]*?from\s*)?["']([^"']+\.js)["']/g)) {
    if (m[1].startsWith('.')) out.push(join(file, '..', m[1]));
  }
  return out;
}

function closure(entries) {
  const seen = new Set();
  const stack = [...entries];
  while (stack.length) {
    const f = stack.pop();
    if (seen.has(f) || !existsSync(f)) continue;
    seen.add(f);
    stack.push(...staticImports(f));
  }
  return seen;
}

function initialJs(html) {
  const text = readFileSync(html, 'utf8');
  const refs = new Set();
  for (const m of text.matchAll(/(?:href|src)="([^"]+\.js)"/g)) refs.add(m[1]);
  for (const m of text.matchAll(/import\(["']([^"']+\.js)["']\)/g)) refs.add(m[1]);
  const files = [...refs].map((r) => join(BUILD, r.replace(/^\//, '').replace(/^(\.\.\/)+|^\.\//, '')));
  // Relative URLs are relative to the page's folder.
  const resolved = [...refs].map((r, i) => (r.startsWith('/') ? files[i] : join(html, '..', r)));
  return closure(resolved.filter((f) => existsSync(f)));
}

// The SPA shell names only SvelteKit's entry points; the route it then opens is known from
// the server build's node table (each node lists every client file it needs). For the
// app shell, that is the root layout, /app's layout and /app's page (the overview).
const NODES = '.svelte-kit/output/server/nodes';
const CLIENT_NODES = '.svelte-kit/generated/client-optimized/nodes';
function nodeImports(sources) {
  const out = [];
  if (!existsSync(NODES) || !existsSync(CLIENT_NODES)) return out;
  for (const name of readdirSync(CLIENT_NODES)) {
    const client = readFileSync(join(CLIENT_NODES, name), 'utf8');
    if (!sources.some((s) => client.includes(`/${s}"`) || client.includes(`/${s}'`))) continue;
    const server = join(NODES, name);
    if (!existsSync(server)) continue;
    const list = readFileSync(server, 'utf8').match(/export const imports = (\[[^\]]*\])/)?.[1];
    if (list) out.push(...JSON.parse(list).map((f) => join(BUILD, f)));
  }
  return out;
}
const APP_SHELL_NODES = ['src/routes/+layout.svelte', 'src/routes/app/+layout.svelte', 'src/routes/app/+page.svelte'];

let failed = false;
const rows = [];
for (const html of htmlFiles(BUILD).sort()) {
  const page = '/' + relative(BUILD, html).replace(/\\/g, '/');
  const shell = page === '/200.html';
  const files = shell ? closure([...initialJs(html), ...nodeImports(APP_SHELL_NODES)]) : initialJs(html);
  const total = [...files].reduce((n, f) => n + gzSize(f), 0);
  const budget = shell ? BUDGET.shell : BUDGET.public;
  const over = total > budget;
  failed ||= over;
  rows.push({ page, kind: shell ? 'app shell' : 'public', kb: (total / 1024).toFixed(1), budget: budget / 1024, files: files.size, over });
}

console.log('\nInitial JavaScript per page (gzipped):');
for (const r of rows) {
  console.log(`  ${r.over ? '✗' : '✓'} ${r.page.padEnd(24)} ${r.kind.padEnd(9)} ${r.kb.padStart(6)} KB / ${r.budget} KB  (${r.files} files)`);
}
const all = readdirSync(join(BUILD, '_app/immutable'), { recursive: true })
  .map((f) => join(BUILD, '_app/immutable', String(f)))
  .filter((f) => f.endsWith('.js'));
const totalAll = all.reduce((n, f) => n + gzSize(f), 0);
console.log(`  all client JS (every route, lazily loaded): ${(totalAll / 1024).toFixed(1)} KB gzipped in ${all.length} files\n`);
// The API explorer (GraphiQL and React, build/graphiql/) is the server's page at
// GET /graphql, never part of the app: no app chunk may carry it.
const carrying = all.filter((f) => /\bGraphiQL\b|react-dom\.production/.test(readFileSync(f, 'utf8')));
if (carrying.length) {
  console.error(`bundle-size: the app's chunks carry GraphiQL or React: ${carrying.join(', ')}`);
  failed = true;
}
if (failed) {
  console.error('bundle-size: a budget is exceeded');
  process.exit(1);
}
