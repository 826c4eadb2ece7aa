// Each file adds its calls to the addon's exports; addon.cc only registers.
#pragma once

#include <napi.h>

namespace integrity {

void RegisterLoopCalls(Napi::Env env, Napi::Object exports);
void RegisterMountCalls(Napi::Env env, Napi::Object exports);
void RegisterDmCalls(Napi::Env env, Napi::Object exports);
void RegisterXattrCalls(Napi::Env env, Napi::Object exports);

}  // namespace integrity
