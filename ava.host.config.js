// Tests run from the compiled tree (`npm run build`), so worker threads and the
// native addon load exactly as they ship. DIST lets parallel builds use their own tree.
const dist = process.env.DIST ?? 'dist';
export default {
  files: [`${dist}/test/host/**/*.test.js`],
  timeout: '300s',
  concurrency: 1,
  workerThreads: false,
};
