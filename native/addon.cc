// Registration only: the calls live in loop.cc, mount.cc, dm.cc and xattr.cc.
#include "calls.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  integrity::RegisterLoopCalls(env, exports);
  integrity::RegisterMountCalls(env, exports);
  integrity::RegisterDmCalls(env, exports);
  integrity::RegisterXattrCalls(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(integrity_native, Init)
