// Loop devices (<linux/loop.h>). Which device to use, and retrying when another
// process takes it first, is decided in snapshotter/native/loop.ts.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>

#include <cstring>

#include "calls.h"
#include "worker.h"

namespace integrity {

namespace {

constexpr const char* kLoopControl = "/dev/loop-control";

// LOOP_CTL_GET_FREE: the number of a free loop device, created if none is free.
class GetFreeWorker : public SyscallWorker {
 public:
  using SyscallWorker::SyscallWorker;

  void Execute() override {
    Fd control = OpenCloexec(kLoopControl, O_RDWR);
    if (!control.valid()) return Fail("open", kLoopControl);
    number_ = RetryOnEintr([&] { return ioctl(control.get(), LOOP_CTL_GET_FREE); });
    if (number_ < 0) return Fail("LOOP_CTL_GET_FREE", kLoopControl);
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, number_); }

 private:
  int number_ = -1;
};

// Binds `file` to `device`. Both are opened read-only when LO_FLAGS_READ_ONLY is
// asked for, because the kernel derives a read-only device from the open modes.
// Resolves to the descriptor of the loop device, left open: with
// LO_FLAGS_AUTOCLEAR the device is freed on its last close, so the caller
// closes it only after the mount (or dm table) holds the device.
class AttachWorker : public SyscallWorker {
 public:
  AttachWorker(Napi::Env env, std::string device, std::string file, uint32_t flags)
      : SyscallWorker(env), device_(std::move(device)), file_(std::move(file)), flags_(flags) {}

  void Execute() override {
    const int mode = (flags_ & LO_FLAGS_READ_ONLY) ? O_RDONLY : O_RDWR;
    Fd backing = OpenCloexec(file_, mode);
    if (!backing.valid()) return Fail("open", file_);
    Fd loop = OpenCloexec(device_, mode);
    if (!loop.valid()) return Fail("open", device_);
    if (Bind(loop.get(), backing.get())) fd_ = loop.release();
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, fd_); }

 protected:
  // The kernel's status record for the binding; lo_file_name is what
  // LOOP_GET_STATUS64 reports back (cut to LO_NAME_SIZE - 1 bytes).
  loop_info64 Info(uint32_t flags) const {
    loop_info64 info{};
    info.lo_flags = flags;
    std::strncpy(reinterpret_cast<char*>(info.lo_file_name), file_.c_str(), LO_NAME_SIZE - 1);
    return info;
  }

  // Returns true when bound; on failure has called Fail().
  virtual bool Bind(int loop, int backing) = 0;

  const std::string device_;
  const std::string file_;
  const uint32_t flags_;

 private:
  int fd_ = -1;
};

// LOOP_CONFIGURE (Linux >= 5.8): file, flags and name in one ioctl, so no other
// process ever sees the device bound but not yet read-only or autoclear.
class ConfigureWorker : public AttachWorker {
 public:
  using AttachWorker::AttachWorker;

 private:
  bool Bind(int loop, int backing) override {
    loop_config config{};
    config.fd = static_cast<__u32>(backing);
    config.info = Info(flags_);
    if (RetryOnEintr([&] { return ioctl(loop, LOOP_CONFIGURE, &config); }) == 0) return true;
    Fail("LOOP_CONFIGURE", device_);
    return false;
  }
};

// LOOP_SET_FD + LOOP_SET_STATUS64 (+ LOOP_SET_DIRECT_IO): the same binding for
// kernels without LOOP_CONFIGURE. Undone with LOOP_CLR_FD if a later step fails,
// so a failed attach never leaves a half-configured device behind.
class SetFdWorker : public AttachWorker {
 public:
  using AttachWorker::AttachWorker;

 private:
  bool Bind(int loop, int backing) override {
    if (RetryOnEintr([&] { return ioctl(loop, LOOP_SET_FD, backing); }) != 0) {
      Fail("LOOP_SET_FD", device_);
      return false;
    }
    // LOOP_SET_STATUS64 only takes these flags; read-only came from the open modes.
    loop_info64 info = Info(flags_ & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN));
    if (RetryOnEintr([&] { return ioctl(loop, LOOP_SET_STATUS64, &info); }) != 0) {
      Fail("LOOP_SET_STATUS64", device_);
    } else if ((flags_ & LO_FLAGS_DIRECT_IO) &&
               RetryOnEintr([&] { return ioctl(loop, LOOP_SET_DIRECT_IO, 1UL); }) != 0) {
      Fail("LOOP_SET_DIRECT_IO", device_);
    }
    if (!failed()) return true;
    ioctl(loop, LOOP_CLR_FD, 0);
    return false;
  }
};

// LOOP_CLR_FD: unbinds the device; while it is still open (mounted) the kernel
// instead marks it autoclear and frees it on the last close.
class ClearFdWorker : public SyscallWorker {
 public:
  ClearFdWorker(Napi::Env env, std::string device) : SyscallWorker(env), device_(std::move(device)) {}

  void Execute() override {
    Fd loop = OpenCloexec(device_, O_RDONLY);
    if (!loop.valid()) return Fail("open", device_);
    if (RetryOnEintr([&] { return ioctl(loop.get(), LOOP_CLR_FD, 0); }) != 0) return Fail("LOOP_CLR_FD", device_);
  }

 private:
  const std::string device_;
};

// LOOP_GET_STATUS64: what a bound device is backed by; ENXIO when unbound.
class GetStatusWorker : public SyscallWorker {
 public:
  GetStatusWorker(Napi::Env env, std::string device) : SyscallWorker(env), device_(std::move(device)) {}

  void Execute() override {
    Fd loop = OpenCloexec(device_, O_RDONLY);
    if (!loop.valid()) return Fail("open", device_);
    if (RetryOnEintr([&] { return ioctl(loop.get(), LOOP_GET_STATUS64, &info_); }) != 0) {
      return Fail("LOOP_GET_STATUS64", device_);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    const char* name = reinterpret_cast<const char*>(info_.lo_file_name);
    Napi::Object status = Napi::Object::New(env);
    status.Set("number", Napi::Number::New(env, info_.lo_number));
    status.Set("backingDevice", Napi::BigInt::New(env, static_cast<uint64_t>(info_.lo_device)));
    status.Set("backingInode", Napi::BigInt::New(env, static_cast<uint64_t>(info_.lo_inode)));
    status.Set("offset", Napi::BigInt::New(env, static_cast<uint64_t>(info_.lo_offset)));
    status.Set("sizeLimit", Napi::BigInt::New(env, static_cast<uint64_t>(info_.lo_sizelimit)));
    status.Set("flags", Napi::Number::New(env, info_.lo_flags));
    status.Set("fileName", Napi::String::New(env, name, strnlen(name, LO_NAME_SIZE)));
    return status;
  }

 private:
  const std::string device_;
  loop_info64 info_{};
};

Napi::Value LoopGetFree(const Napi::CallbackInfo& info) { return (new GetFreeWorker(info.Env()))->Start(); }

template <typename Worker>
Napi::Value LoopAttach(const Napi::CallbackInfo& info) {
  std::string device = ToString(info[0], "device");
  std::string file = ToString(info[1], "file");
  uint32_t flags = ToUint32(info[2], "flags");
  return (new Worker(info.Env(), std::move(device), std::move(file), flags))->Start();
}

template <typename Worker>
Napi::Value LoopDeviceCall(const Napi::CallbackInfo& info) {
  return (new Worker(info.Env(), ToString(info[0], "device")))->Start();
}

}  // namespace

void RegisterLoopCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("loopGetFree", Napi::Function::New(env, LoopGetFree, "loopGetFree"));
  exports.Set("loopConfigure", Napi::Function::New(env, LoopAttach<ConfigureWorker>, "loopConfigure"));
  exports.Set("loopSetFd", Napi::Function::New(env, LoopAttach<SetFdWorker>, "loopSetFd"));
  exports.Set("loopClearFd", Napi::Function::New(env, LoopDeviceCall<ClearFdWorker>, "loopClearFd"));
  exports.Set("loopGetStatus", Napi::Function::New(env, LoopDeviceCall<GetStatusWorker>, "loopGetStatus"));
}

}  // namespace integrity
