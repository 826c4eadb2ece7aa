import test from 'ava';
import { proxyFor } from '../../../../snapshotter/service/registry/proxy.js';

const P = 'http://proxy.example:3128/';

const cases: Array<[string, NodeJS.ProcessEnv, string | undefined]> = [
  ['https://r.example/v2/', {}, undefined],
  ['https://r.example/v2/', { HTTPS_PROXY: 'http://proxy.example:3128' }, P],
  ['https://r.example/v2/', { https_proxy: 'proxy.example:3128' }, P],
  ['https://r.example/v2/', { HTTPS_PROXY: 'http://proxy.example:3128', https_proxy: 'http://other:1' }, P],
  ['https://r.example/v2/', { HTTP_PROXY: 'http://proxy.example:3128' }, undefined],
  ['http://r.example/v2/', { HTTP_PROXY: 'http://proxy.example:3128' }, P],
  ['https://localhost:5000/v2/', { HTTPS_PROXY: P }, undefined],
  ['https://127.0.0.1:5000/v2/', { HTTPS_PROXY: P }, undefined],
  ['https://[::1]:5000/v2/', { HTTPS_PROXY: P }, undefined],
  ['https://r.example/v2/', { HTTPS_PROXY: P, NO_PROXY: '*' }, undefined],
  ['https://r.example/v2/', { HTTPS_PROXY: P, NO_PROXY: 'other.example, r.example' }, undefined],
  ['https://a.r.example/v2/', { HTTPS_PROXY: P, NO_PROXY: 'r.example' }, undefined],
  ['https://r.example/v2/', { HTTPS_PROXY: P, NO_PROXY: '.r.example' }, P],
  ['https://a.r.example/v2/', { HTTPS_PROXY: P, no_proxy: '.r.example' }, undefined],
  ['https://xr.example/v2/', { HTTPS_PROXY: P, NO_PROXY: 'r.example' }, P],
  ['https://r.example:5000/v2/', { HTTPS_PROXY: P, NO_PROXY: 'r.example:443' }, P],
  ['https://r.example/v2/', { HTTPS_PROXY: P, NO_PROXY: 'r.example:443' }, undefined],
  ['https://10.1.2.3/v2/', { HTTPS_PROXY: P, NO_PROXY: '10.0.0.0/8' }, undefined],
  ['https://11.1.2.3/v2/', { HTTPS_PROXY: P, NO_PROXY: '10.0.0.0/8' }, P],
  ['https://10.1.2.3/v2/', { HTTPS_PROXY: P, NO_PROXY: '10.1.2.3' }, undefined],
  ['https://[fd00::5]/v2/', { HTTPS_PROXY: P, NO_PROXY: 'fd00::/8' }, undefined],
];

for (const [url, env, expected] of cases) {
  test(`proxyFor(${url}, ${JSON.stringify(env)})`, (t) => {
    t.is(proxyFor(new URL(url), env)?.href, expected);
  });
}
