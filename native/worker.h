// Plumbing shared by every call of the addon: argument readers, an owned file
// descriptor, and the AsyncWorker that turns one blocking system call into a
// Promise. Policy (retries, names, tables) lives in TypeScript, not here.
#pragma once

#include <napi.h>

#include <cerrno>
#include <string>
#include <utility>

namespace integrity {

// The failed call, recorded on the worker thread and turned into a JS error
// on the JS thread: `code` (errno name), `errno`, `syscall`, `path`.
struct SyscallFailure {
  int err = 0;
  std::string syscall;
  std::string path;
};

// Runs `call` again while it fails with EINTR; the only retry the addon does.
template <typename Call>
auto RetryOnEintr(Call call) {
  for (;;) {
    auto result = call();
    if (result != -1 || errno != EINTR) return result;
  }
}

// A file descriptor closed on every path out of a function unless released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ~Fd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// open(2) with O_CLOEXEC, so descriptors the addon holds never leak into the
// programs the daemon spawns (mkfs.erofs, veritysetup, runc).
Fd OpenCloexec(const std::string& path, int flags);

// Argument readers: strings are UTF-8 text, Buffers raw bytes (paths need not
// be UTF-8). They throw a JS TypeError instead of letting a wrong type
// or an embedded NUL (which would silently cut a path short) reach a syscall.
// `max_bytes` bounds strings copied into fixed kernel fields (0: no bound).
std::string ToString(Napi::Value value, const char* what, size_t max_bytes = 0);
uint32_t ToUint32(Napi::Value value, const char* what);
uint64_t ToUint64(Napi::Value value, const char* what);

// One blocking call off the JS thread. Subclasses copy their arguments in the
// constructor, do the call in Execute() (no JS there), record a failure with
// Fail(), and build the resolved value in Result() on the JS thread.
class SyscallWorker : public Napi::AsyncWorker {
 public:
  explicit SyscallWorker(Napi::Env env);

  // Queues the worker and hands its promise to JS.
  Napi::Promise Start();

 protected:
  // Records errno for `syscall` on `path`; Execute() should return right after.
  void Fail(const char* syscall, std::string path, int err = errno);
  bool failed() const { return failure_.err != 0; }

  // The resolved value; by default `undefined`.
  virtual Napi::Value Result(Napi::Env env);

 private:
  // Failures are recorded with Fail(), never AsyncWorker::SetError(), so the
  // promise is settled here in both cases.
  void OnOK() final;

  Napi::Promise::Deferred deferred_;
  SyscallFailure failure_;
};

}  // namespace integrity
