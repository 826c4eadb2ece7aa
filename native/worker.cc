#include "worker.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace integrity {

namespace {

// glibc >= 2.32 names errno values itself; the name is what TypeScript matches on.
std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "E" + std::to_string(err);
}

std::string ErrnoDescription(int err) {
  const char* text = strerrordesc_np(err);
  return text != nullptr ? text : "errno " + std::to_string(err);
}

Napi::Value ToJsError(Napi::Env env, const SyscallFailure& failure) {
  std::string message = failure.syscall;
  if (!failure.path.empty()) message += " " + failure.path;
  message += ": " + ErrnoName(failure.err) + ": " + ErrnoDescription(failure.err);
  Napi::Object error = Napi::Error::New(env, message).Value();
  error.Set("code", ErrnoName(failure.err));
  error.Set("errno", failure.err);
  error.Set("syscall", failure.syscall);
  error.Set("path", failure.path);
  error.Set("description", ErrnoDescription(failure.err));
  return error;
}

[[noreturn]] void ThrowTypeError(Napi::Env env, const char* what, const char* expected) {
  throw Napi::TypeError::New(env, std::string(what) + " must be " + expected);
}

}  // namespace

Fd::~Fd() {
  // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
  if (fd_ >= 0) close(fd_);
}

Fd OpenCloexec(const std::string& path, int flags) {
  return Fd(RetryOnEintr([&] { return open(path.c_str(), flags | O_CLOEXEC); }));
}

std::string ToString(Napi::Value value, const char* what, size_t max_bytes) {
  std::string text;
  if (value.IsBuffer()) {
    // Raw bytes: file names need not be UTF-8.
    auto bytes = value.As<Napi::Buffer<char>>();
    text.assign(bytes.Data(), bytes.Length());
  } else if (value.IsString()) {
    text = value.As<Napi::String>().Utf8Value();
  } else {
    ThrowTypeError(value.Env(), what, "a string or a Buffer");
  }
  if (text.find('\0') != std::string::npos) ThrowTypeError(value.Env(), what, "free of NUL bytes");
  if (max_bytes != 0 && text.size() > max_bytes) {
    ThrowTypeError(value.Env(), what, ("at most " + std::to_string(max_bytes) + " bytes").c_str());
  }
  return text;
}

uint32_t ToUint32(Napi::Value value, const char* what) {
  if (!value.IsNumber()) ThrowTypeError(value.Env(), what, "a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= UINT32_MAX && std::floor(number) == number)) {
    ThrowTypeError(value.Env(), what, "an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(number);
}

uint64_t ToUint64(Napi::Value value, const char* what) {
  if (!value.IsNumber()) ThrowTypeError(value.Env(), what, "a number");
  double number = value.As<Napi::Number>().DoubleValue();
  constexpr double kMaxSafeInteger = 9007199254740991.0;
  if (!(number >= 0 && number <= kMaxSafeInteger && std::floor(number) == number)) {
    ThrowTypeError(value.Env(), what, "a non-negative safe integer");
  }
  return static_cast<uint64_t>(number);
}

SyscallWorker::SyscallWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

Napi::Promise SyscallWorker::Start() {
  Napi::Promise promise = deferred_.Promise();
  Queue();
  return promise;
}

void SyscallWorker::Fail(const char* syscall, std::string path, int err) {
  failure_ = SyscallFailure{err, syscall, std::move(path)};
}

Napi::Value SyscallWorker::Result(Napi::Env env) { return env.Undefined(); }

void SyscallWorker::OnOK() {
  Napi::Env env = Env();
  if (failed()) {
    deferred_.Reject(ToJsError(env, failure_));
    return;
  }
  deferred_.Resolve(Result(env));
}

}  // namespace integrity
