// Copies the API explorer's libraries into build/graphiql/vendor/, with the .br and .gz
// siblings the server picks from (like the adapter's precompress), so that GET /graphql
// (GraphiQL, served by the server when PLINTH_GRAPHIQL is on) loads nothing from another
// host. They are the npm packages' own prebuilt browser files, not bundled with the app:
// GraphiQL 4 is the last major that ships one (5 needs Monaco's workers bundled), and
// React 18 the last with UMD files. The page itself is the server's
// (api/src/http/graphql.rs); its script is static/graphiql/explorer.js.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const OUT = 'build/graphiql/vendor';
const FILES = [
  ['node_modules/react/umd/react.production.min.js', 'react.production.min.js'],
  ['node_modules/react-dom/umd/react-dom.production.min.js', 'react-dom.production.min.js'],
  ['node_modules/graphiql/graphiql.min.js', 'graphiql.min.js'],
  ['node_modules/graphiql/graphiql.min.css', 'graphiql.min.css'],
];

mkdirSync(OUT, { recursive: true });
for (const [from, name] of FILES) {
  const to = join(OUT, name);
  copyFileSync(from, to);
  const bytes = readFileSync(to);
  // The text itself must name no other host to load from (a font, an @import).
  if (name.endsWith('.css') && /@import|url\(\s*["']?(https?:)?\/\//.test(bytes.toString('utf8'))) {
    console.error(`graphiql: ${from} loads something from another host; the explorer must work offline`);
    process.exit(1);
  }
  writeFileSync(`${to}.gz`, gzipSync(bytes, { level: 9 }));
  writeFileSync(`${to}.br`, brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 9 } }));
}
console.log(`graphiql: ${FILES.length} files copied to ${OUT}`);
