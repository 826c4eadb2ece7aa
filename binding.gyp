{
  'targets': [
    {
      'target_name': 'integrity_native',
      'sources': [
        'native/addon.cc',
        'native/worker.cc',
        'native/loop.cc',
        'native/mount.cc',
        'native/dm.cc',
        'native/xattr.cc',
      ],
      # node_addon_api_except: C++ exceptions on, so a wrong argument type
      # becomes a JS TypeError instead of undefined behaviour.
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags_cc!': ['-std=gnu++17'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra'],
    },
  ],
}
