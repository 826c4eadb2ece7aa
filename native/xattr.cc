// llistxattr(2) and lgetxattr(2): the snapshotter reads the extended
// attributes of an upper directory (overlay opaque markers, file
// capabilities, user xattrs) when it turns it into a layer image. Node has no
// xattr API. Both calls act on the link itself, never a symlink's target.
#include <sys/xattr.h>

#include <vector>

#include "calls.h"
#include "worker.h"

namespace integrity {

namespace {

// Asks the kernel for the size first, then reads; ERANGE means the list or
// value grew in between, so ask again. That loop is the syscall's protocol,
// not policy.
template <typename Call>
bool ReadSized(Call call, std::vector<char>& out) {
  for (;;) {
    ssize_t size = RetryOnEintr([&] { return call(nullptr, 0); });
    if (size < 0) return false;
    out.resize(static_cast<size_t>(size));
    if (size == 0) return true;
    ssize_t got = RetryOnEintr([&] { return call(out.data(), out.size()); });
    if (got >= 0) {
      out.resize(static_cast<size_t>(got));
      return true;
    }
    if (errno != ERANGE) return false;
  }
}

class ListXattrWorker : public SyscallWorker {
 public:
  ListXattrWorker(Napi::Env env, std::string path) : SyscallWorker(env), path_(std::move(path)) {}

  void Execute() override {
    auto call = [&](char* buf, size_t size) { return llistxattr(path_.c_str(), buf, size); };
    if (!ReadSized(call, names_)) return Fail("llistxattr", path_);
  }

  // The kernel's NUL-separated name list, as one Buffer; TypeScript splits it.
  Napi::Value Result(Napi::Env env) override { return Napi::Buffer<char>::Copy(env, names_.data(), names_.size()); }

 private:
  const std::string path_;
  std::vector<char> names_;
};

class GetXattrWorker : public SyscallWorker {
 public:
  GetXattrWorker(Napi::Env env, std::string path, std::string name)
      : SyscallWorker(env), path_(std::move(path)), name_(std::move(name)) {}

  void Execute() override {
    auto call = [&](char* buf, size_t size) { return lgetxattr(path_.c_str(), name_.c_str(), buf, size); };
    if (!ReadSized(call, value_)) return Fail("lgetxattr", path_);
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Buffer<char>::Copy(env, value_.data(), value_.size()); }

 private:
  const std::string path_;
  const std::string name_;
  std::vector<char> value_;
};

// llistxattr(path) → Buffer of NUL-terminated names
Napi::Value ListXattr(const Napi::CallbackInfo& info) {
  std::string path = ToString(info[0], "path");
  return (new ListXattrWorker(info.Env(), std::move(path)))->Start();
}

// lgetxattr(path, name) → Buffer
Napi::Value GetXattr(const Napi::CallbackInfo& info) {
  std::string path = ToString(info[0], "path");
  std::string name = ToString(info[1], "name");
  return (new GetXattrWorker(info.Env(), std::move(path), std::move(name)))->Start();
}

}  // namespace

void RegisterXattrCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("llistxattr", Napi::Function::New(env, ListXattr, "llistxattr"));
  exports.Set("lgetxattr", Napi::Function::New(env, GetXattr, "lgetxattr"));
}

}  // namespace integrity
