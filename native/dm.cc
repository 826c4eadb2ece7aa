// Device-mapper ioctls on /dev/mapper/control (<linux/dm-ioctl.h>, interface 4).
// Device names, tables and the device node are decided in snapshotter/native/dm.ts.
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "calls.h"
#include "worker.h"

namespace integrity {

namespace {

constexpr const char* kControl = "/dev/mapper/control";
constexpr size_t kInitialBufferSize = 16 * 1024;
// Far beyond any table or device list this project makes; stops a runaway loop.
constexpr size_t kMaxBufferSize = 64 * 1024 * 1024;

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

// A dm_ioctl header followed by its data area, 8-byte aligned as the kernel
// expects for the dm_target_spec records in it.
class DmBuffer {
 public:
  explicit DmBuffer(size_t size) : words_(Align8(size) / 8) {
    dm_ioctl& h = header();
    h.version[0] = DM_VERSION_MAJOR;  // minor 0: any 4.x kernel will do
    h.data_size = static_cast<__u32>(words_.size() * 8);
    h.data_start = sizeof(dm_ioctl);
  }

  dm_ioctl& header() { return *reinterpret_cast<dm_ioctl*>(words_.data()); }
  const dm_ioctl& header() const { return *reinterpret_cast<const dm_ioctl*>(words_.data()); }
  char* bytes() { return reinterpret_cast<char*>(words_.data()); }
  const char* bytes() const { return reinterpret_cast<const char*>(words_.data()); }
  size_t size() const { return words_.size() * 8; }

  // The data area the kernel filled in, bounded by what was allocated.
  size_t data_end() const { return std::min<size_t>(header().data_size, size()); }

 private:
  std::vector<uint64_t> words_;
};

// Copies a NUL-free string (length checked by ToString) into a fixed field.
template <size_t N>
void CopyField(char (&field)[N], const std::string& value) {
  std::strncpy(field, value.c_str(), N - 1);
}

std::string FieldString(const char* field, size_t capacity) { return std::string(field, strnlen(field, capacity)); }

Napi::Object DeviceObject(Napi::Env env, uint64_t dev) {
  Napi::Object device = Napi::Object::New(env);
  device.Set("major", Napi::Number::New(env, major(dev)));
  device.Set("minor", Napi::Number::New(env, minor(dev)));
  device.Set("dev", Napi::BigInt::New(env, dev));
  return device;
}

// The header fields that DM_DEV_STATUS and friends report about one device.
Napi::Object InfoObject(Napi::Env env, const dm_ioctl& h) {
  Napi::Object info = DeviceObject(env, h.dev);
  info.Set("name", FieldString(h.name, DM_NAME_LEN));
  info.Set("uuid", FieldString(h.uuid, DM_UUID_LEN));
  info.Set("openCount", Napi::Number::New(env, h.open_count));
  info.Set("flags", Napi::Number::New(env, h.flags));
  info.Set("eventNr", Napi::Number::New(env, h.event_nr));
  info.Set("targetCount", Napi::Number::New(env, h.target_count));
  return info;
}

// One ioctl on the control device. Subclasses fill the header and data area
// in Prepare() and read the kernel's answer in Result(). When the kernel says
// DM_BUFFER_FULL_FLAG the call is repeated with a buffer twice the size: only
// the calls that return data (status, list) ever set it.
class DmWorker : public SyscallWorker {
 public:
  DmWorker(Napi::Env env, unsigned long request, const char* request_name, std::string name, uint32_t flags)
      : SyscallWorker(env), request_(request), request_name_(request_name), name_(std::move(name)), flags_(flags) {}

  void Execute() override {
    Fd control = OpenCloexec(kControl, O_RDWR);
    if (!control.valid()) return Fail("open", kControl);
    for (size_t size = InitialSize();; size *= 2) {
      if (size > kMaxBufferSize) return Fail(request_name_, name_, ENOBUFS);
      buffer_ = DmBuffer(size);
      dm_ioctl& h = buffer_.header();
      h.flags = flags_;
      CopyField(h.name, name_);
      Prepare(buffer_);
      if (RetryOnEintr([&] { return ioctl(control.get(), request_, buffer_.bytes()); }) != 0) {
        return Fail(request_name_, name_);
      }
      if (!(buffer_.header().flags & DM_BUFFER_FULL_FLAG)) return;
    }
  }

  Napi::Value Result(Napi::Env env) override { return InfoObject(env, buffer_.header()); }

 protected:
  virtual size_t InitialSize() const { return kInitialBufferSize; }
  virtual void Prepare(DmBuffer&) {}

  const DmBuffer& buffer() const { return buffer_; }

 private:
  const unsigned long request_;
  const char* const request_name_;
  const std::string name_;
  const uint32_t flags_;
  DmBuffer buffer_{sizeof(dm_ioctl)};
};

// DM_VERSION: the kernel's ioctl interface version.
class VersionWorker : public DmWorker {
 public:
  explicit VersionWorker(Napi::Env env) : DmWorker(env, DM_VERSION, "DM_VERSION", "", 0) {}

  Napi::Value Result(Napi::Env env) override {
    Napi::Array version = Napi::Array::New(env, 3);
    for (uint32_t i = 0; i < 3; i++) version.Set(i, Napi::Number::New(env, buffer().header().version[i]));
    return version;
  }
};

// DM_DEV_CREATE: a named device with no table yet.
class CreateWorker : public DmWorker {
 public:
  CreateWorker(Napi::Env env, std::string name, std::string uuid, uint32_t flags)
      : DmWorker(env, DM_DEV_CREATE, "DM_DEV_CREATE", std::move(name), flags), uuid_(std::move(uuid)) {}

 private:
  void Prepare(DmBuffer& buffer) override { CopyField(buffer.header().uuid, uuid_); }

  const std::string uuid_;
};

struct Target {
  uint64_t start;
  uint64_t length;
  std::string type;
  std::string params;
};

// DM_TABLE_LOAD: the inactive table, made live by the next resume. Each
// dm_target_spec is followed by its parameter string and padded to 8 bytes;
// `next` counts from the start of this spec to the start of the next.
class LoadWorker : public DmWorker {
 public:
  LoadWorker(Napi::Env env, std::string name, std::vector<Target> targets, uint32_t flags)
      : DmWorker(env, DM_TABLE_LOAD, "DM_TABLE_LOAD", std::move(name), flags), targets_(std::move(targets)) {}

 private:
  static size_t SpecSize(const Target& target) { return Align8(sizeof(dm_target_spec) + target.params.size() + 1); }

  size_t InitialSize() const override {
    size_t size = sizeof(dm_ioctl);
    for (const Target& target : targets_) size += SpecSize(target);
    return size;
  }

  void Prepare(DmBuffer& buffer) override {
    dm_ioctl& h = buffer.header();
    h.target_count = static_cast<__u32>(targets_.size());
    size_t offset = h.data_start;
    for (const Target& target : targets_) {
      auto* spec = reinterpret_cast<dm_target_spec*>(buffer.bytes() + offset);
      spec->sector_start = target.start;
      spec->length = target.length;
      spec->next = static_cast<__u32>(SpecSize(target));
      CopyField(spec->target_type, target.type);
      std::memcpy(spec + 1, target.params.c_str(), target.params.size() + 1);
      offset += spec->next;
    }
  }

  const std::vector<Target> targets_;
};

// DM_TABLE_STATUS: each live target's status line, or with DM_STATUS_TABLE_FLAG
// its table line. Here `next` counts from the first spec, not the current one.
class TableStatusWorker : public DmWorker {
 public:
  TableStatusWorker(Napi::Env env, std::string name, uint32_t flags)
      : DmWorker(env, DM_TABLE_STATUS, "DM_TABLE_STATUS", std::move(name), flags) {}

  Napi::Value Result(Napi::Env env) override {
    const dm_ioctl& h = buffer().header();
    const size_t first = h.data_start;
    const size_t end = buffer().data_end();
    Napi::Array targets = Napi::Array::New(env);
    size_t offset = first;
    for (uint32_t i = 0; i < h.target_count && offset + sizeof(dm_target_spec) <= end; i++) {
      const auto* spec = reinterpret_cast<const dm_target_spec*>(buffer().bytes() + offset);
      const char* params = reinterpret_cast<const char*>(spec + 1);
      Napi::Object target = Napi::Object::New(env);
      target.Set("start", Napi::Number::New(env, static_cast<double>(spec->sector_start)));
      target.Set("length", Napi::Number::New(env, static_cast<double>(spec->length)));
      target.Set("type", FieldString(spec->target_type, DM_MAX_TYPE_NAME));
      target.Set("params", FieldString(params, end - (offset + sizeof(dm_target_spec))));
      targets.Set(i, target);
      offset = first + spec->next;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("info", InfoObject(env, h));
    result.Set("targets", targets);
    return result;
  }
};

// DM_LIST_DEVICES: every device's name and number. Each dm_name_list record's
// `next` counts from that record; 0 ends the list, dev 0 means no devices.
class ListWorker : public DmWorker {
 public:
  explicit ListWorker(Napi::Env env) : DmWorker(env, DM_LIST_DEVICES, "DM_LIST_DEVICES", "", 0) {}

  Napi::Value Result(Napi::Env env) override {
    const size_t end = buffer().data_end();
    Napi::Array devices = Napi::Array::New(env);
    size_t offset = buffer().header().data_start;
    for (uint32_t i = 0; offset + sizeof(dm_name_list) <= end; i++) {
      const auto* entry = reinterpret_cast<const dm_name_list*>(buffer().bytes() + offset);
      if (entry->dev == 0) break;
      Napi::Object device = DeviceObject(env, entry->dev);
      device.Set("name", FieldString(entry->name, end - (offset + sizeof(dm_name_list))));
      devices.Set(i, device);
      if (entry->next == 0) break;
      offset += entry->next;
    }
    return devices;
  }
};

std::string NameArg(const Napi::CallbackInfo& info) { return ToString(info[0], "name", DM_NAME_LEN - 1); }

Napi::Value Version(const Napi::CallbackInfo& info) { return (new VersionWorker(info.Env()))->Start(); }

Napi::Value List(const Napi::CallbackInfo& info) { return (new ListWorker(info.Env()))->Start(); }

// dmDevCreate(name, uuid, flags)
Napi::Value Create(const Napi::CallbackInfo& info) {
  std::string name = NameArg(info);
  std::string uuid = ToString(info[1], "uuid", DM_UUID_LEN - 1);
  uint32_t flags = ToUint32(info[2], "flags");
  return (new CreateWorker(info.Env(), std::move(name), std::move(uuid), flags))->Start();
}

// dmTableLoad(name, [{start, length, type, params}], flags)
Napi::Value Load(const Napi::CallbackInfo& info) {
  std::string name = NameArg(info);
  if (!info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "targets must be an array");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<Target> targets;
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value element = array.Get(i);
    if (!element.IsObject()) throw Napi::TypeError::New(info.Env(), "each target must be an object");
    Napi::Object target = element.As<Napi::Object>();
    targets.push_back(Target{ToUint64(target.Get("start"), "target start"),
                             ToUint64(target.Get("length"), "target length"),
                             ToString(target.Get("type"), "target type", DM_MAX_TYPE_NAME - 1),
                             ToString(target.Get("params"), "target params")});
  }
  uint32_t flags = ToUint32(info[2], "flags");
  return (new LoadWorker(info.Env(), std::move(name), std::move(targets), flags))->Start();
}

// dmTableStatus(name, flags)
Napi::Value TableStatus(const Napi::CallbackInfo& info) {
  std::string name = NameArg(info);
  return (new TableStatusWorker(info.Env(), std::move(name), ToUint32(info[1], "flags")))->Start();
}

// The calls that send only a name and flags and answer with the device's header.
Napi::Value NameCall(const Napi::CallbackInfo& info, unsigned long request, const char* request_name) {
  std::string name = NameArg(info);
  uint32_t flags = ToUint32(info[1], "flags");
  return (new DmWorker(info.Env(), request, request_name, std::move(name), flags))->Start();
}

// dmDevSuspend(name, flags): without DM_SUSPEND_FLAG it resumes, making the loaded table live.
Napi::Value Suspend(const Napi::CallbackInfo& info) { return NameCall(info, DM_DEV_SUSPEND, "DM_DEV_SUSPEND"); }

// dmDevRemove(name, flags): with DM_DEFERRED_REMOVE a busy device goes on its last close.
Napi::Value Remove(const Napi::CallbackInfo& info) { return NameCall(info, DM_DEV_REMOVE, "DM_DEV_REMOVE"); }

// dmDevStatus(name, flags): the device's header; ENXIO when there is no such device.
Napi::Value DevStatus(const Napi::CallbackInfo& info) { return NameCall(info, DM_DEV_STATUS, "DM_DEV_STATUS"); }

}  // namespace

void RegisterDmCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("dmVersion", Napi::Function::New(env, Version, "dmVersion"));
  exports.Set("dmListDevices", Napi::Function::New(env, List, "dmListDevices"));
  exports.Set("dmDevCreate", Napi::Function::New(env, Create, "dmDevCreate"));
  exports.Set("dmTableLoad", Napi::Function::New(env, Load, "dmTableLoad"));
  exports.Set("dmTableStatus", Napi::Function::New(env, TableStatus, "dmTableStatus"));
  exports.Set("dmDevSuspend", Napi::Function::New(env, Suspend, "dmDevSuspend"));
  exports.Set("dmDevRemove", Napi::Function::New(env, Remove, "dmDevRemove"));
  exports.Set("dmDevStatus", Napi::Function::New(env, DevStatus, "dmDevStatus"));
}

}  // namespace integrity
