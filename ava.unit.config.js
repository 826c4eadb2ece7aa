// Tests run from the compiled tree (`npm run build`), so worker threads and the
// native addon load exactly as they ship. DIST lets parallel builds use their own tree.
const dist = process.env.DIST ?? 'dist';
export default {
  files: [`${dist}/test/unit/**/*.test.js`],
  timeout: '60s',
  concurrency: 2,
  workerThreads: false,
};
