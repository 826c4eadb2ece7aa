// mount(2) and umount2(2). Flag names, option strings and the one-page limit on
// mount data are handled in snapshotter/native/mount.ts.
#include <sys/mount.h>

#include "calls.h"
#include "worker.h"

namespace integrity {

namespace {

class MountWorker : public SyscallWorker {
 public:
  MountWorker(Napi::Env env, std::string source, std::string target, std::string fstype, unsigned long flags,
              std::string data, bool has_data)
      : SyscallWorker(env),
        source_(std::move(source)),
        target_(std::move(target)),
        fstype_(std::move(fstype)),
        flags_(flags),
        data_(std::move(data)),
        has_data_(has_data) {}

  void Execute() override {
    const char* data = has_data_ ? data_.c_str() : nullptr;
    if (RetryOnEintr([&] { return ::mount(source_.c_str(), target_.c_str(), fstype_.c_str(), flags_, data); }) != 0) {
      return Fail("mount", target_);
    }
  }

 private:
  const std::string source_;
  const std::string target_;
  const std::string fstype_;
  const unsigned long flags_;
  const std::string data_;
  const bool has_data_;
};

class UnmountWorker : public SyscallWorker {
 public:
  UnmountWorker(Napi::Env env, std::string target, int flags)
      : SyscallWorker(env), target_(std::move(target)), flags_(flags) {}

  void Execute() override {
    if (RetryOnEintr([&] { return umount2(target_.c_str(), flags_); }) != 0) return Fail("umount2", target_);
  }

 private:
  const std::string target_;
  const int flags_;
};

// mount(source, target, fstype, flags, data | null)
Napi::Value Mount(const Napi::CallbackInfo& info) {
  std::string source = ToString(info[0], "source");
  std::string target = ToString(info[1], "target");
  std::string fstype = ToString(info[2], "fstype");
  uint32_t flags = ToUint32(info[3], "flags");
  const bool has_data = !info[4].IsNull() && !info[4].IsUndefined();
  std::string data = has_data ? ToString(info[4], "data") : std::string();
  return (new MountWorker(info.Env(), std::move(source), std::move(target), std::move(fstype), flags,
                          std::move(data), has_data))
      ->Start();
}

// umount2(target, flags)
Napi::Value Unmount(const Napi::CallbackInfo& info) {
  std::string target = ToString(info[0], "target");
  uint32_t flags = ToUint32(info[1], "flags");
  return (new UnmountWorker(info.Env(), std::move(target), static_cast<int>(flags)))->Start();
}

}  // namespace

void RegisterMountCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Unmount, "umount2"));
}

}  // namespace integrity
