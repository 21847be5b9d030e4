// pte_arm64: ExecuTorch's C++ runtime (XNNPACK delegate, optimized kernels) behind a small C interface,
// built for aarch64 against the libraries and headers of the executorch aarch64 wheel, and loaded with
// ctypes by the emulated ARM worker (lsnet_deploy/arm/worker.py). ExecuTorch's own Python bindings cannot
// run there: they link libtorch, whose only aarch64 wheel on PyPI is a CUDA build.
//
// Built by `python -m lsnet_deploy.arm.setup --with-executorch` (lsnet_deploy/arm/setup.py) with Debian's
// aarch64 cross compiler, unpacked into the cache like the sysroot. One
// program, its "forward" method, one float32 or float16 input tensor; outputs are copied out as float32.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/runtime/executor/memory_manager.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

// The wheel ships libexecutorch_threadpool.so but not its header: the two entry points used here.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace et = executorch::runtime;
using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::aten::TensorImpl;
using executorch::extension::FileDataLoader;

namespace {

constexpr size_t kMethodPoolBytes = 16u << 20;  // method metadata, instruction lists, delegate handles

struct Session {
  std::unique_ptr<FileDataLoader> loader;
  std::unique_ptr<et::Program> program;
  std::vector<uint8_t> method_pool;
  std::unique_ptr<et::MemoryAllocator> method_allocator;
  std::vector<std::vector<uint8_t>> planned_buffers;
  std::vector<et::Span<uint8_t>> planned_spans;
  std::unique_ptr<et::HierarchicalAllocator> planned;
  std::unique_ptr<et::MemoryManager> memory;
  std::unique_ptr<et::Method> method;
  std::vector<TensorImpl::SizesType> input_sizes;
  std::vector<TensorImpl::DimOrderType> input_dim_order;
  ScalarType input_type = ScalarType::Float;
};

void set_error(char* error, size_t capacity, const std::string& text) {
  if (error != nullptr && capacity > 0) {
    std::snprintf(error, capacity, "%s", text.c_str());
  }
}

std::string code(et::Error status) {
  char text[32];
  std::snprintf(text, sizeof(text), "0x%x", static_cast<unsigned>(status));
  return text;
}

}  // namespace

extern "C" {

// Load `path`'s forward method. Returns a handle, or null with `error` filled.
void* pte_load(const char* path, char* error, size_t error_capacity) {
  et::runtime_init();
  auto session = std::make_unique<Session>();
  auto loader = FileDataLoader::from(path);
  if (!loader.ok()) {
    set_error(error, error_capacity, std::string("cannot read ") + path + " (error " + code(loader.error()) + ")");
    return nullptr;
  }
  session->loader = std::make_unique<FileDataLoader>(std::move(loader.get()));
  auto program = et::Program::load(session->loader.get());
  if (!program.ok()) {
    set_error(error, error_capacity, std::string(path) + " is not an ExecuTorch program this runtime reads (error " +
                                         code(program.error()) + ")");
    return nullptr;
  }
  session->program = std::make_unique<et::Program>(std::move(program.get()));
  auto meta = session->program->method_meta("forward");
  if (!meta.ok()) {
    set_error(error, error_capacity, "the program has no forward method");
    return nullptr;
  }
  for (size_t i = 0; i < meta->num_memory_planned_buffers(); ++i) {
    session->planned_buffers.emplace_back(static_cast<size_t>(meta->memory_planned_buffer_size(i).get()));
  }
  for (auto& buffer : session->planned_buffers) {
    session->planned_spans.emplace_back(buffer.data(), buffer.size());
  }
  session->method_pool.resize(kMethodPoolBytes);
  session->method_allocator = std::make_unique<et::MemoryAllocator>(
      static_cast<uint32_t>(session->method_pool.size()), session->method_pool.data());
  session->planned = std::make_unique<et::HierarchicalAllocator>(
      et::Span<et::Span<uint8_t>>(session->planned_spans.data(), session->planned_spans.size()));
  session->memory = std::make_unique<et::MemoryManager>(session->method_allocator.get(), session->planned.get());
  auto method = session->program->load_method("forward", session->memory.get());
  if (!method.ok()) {
    set_error(error, error_capacity, "cannot load the forward method (error " + code(method.error()) +
                                         "; a kernel or delegate missing from this build?)");
    return nullptr;
  }
  session->method = std::make_unique<et::Method>(std::move(method.get()));
  auto input = meta->input_tensor_meta(0);
  if (!input.ok()) {
    set_error(error, error_capacity, "the forward method's first input is not a tensor");
    return nullptr;
  }
  session->input_type = input->scalar_type();
  for (auto size : input->sizes()) session->input_sizes.push_back(size);
  for (auto order : input->dim_order()) session->input_dim_order.push_back(order);
  return session.release();
}

// The input: writes up to 8 sizes, returns the rank; `*is_half` is 1 for a float16 input, 0 for float32.
int pte_input(void* handle, int64_t* sizes, int* is_half) {
  auto* session = static_cast<Session*>(handle);
  for (size_t i = 0; i < session->input_sizes.size() && i < 8; ++i) sizes[i] = session->input_sizes[i];
  *is_half = session->input_type == ScalarType::Half ? 1 : 0;
  return static_cast<int>(session->input_sizes.size());
}

// Run forward on `input` (the input's dtype, contiguous). Returns the number of outputs, or -1 with
// `error` filled. Output i is then read with pte_output.
int pte_run(void* handle, void* input, char* error, size_t error_capacity) {
  auto* session = static_cast<Session*>(handle);
  TensorImpl impl(session->input_type, static_cast<ssize_t>(session->input_sizes.size()),
                  session->input_sizes.data(), input, session->input_dim_order.data());
  Tensor tensor(&impl);
  et::Error status = session->method->set_input(et::EValue(tensor), 0);
  if (status != et::Error::Ok) {
    set_error(error, error_capacity, "set_input failed (error " + code(status) + ")");
    return -1;
  }
  status = session->method->execute();
  if (status != et::Error::Ok) {
    set_error(error, error_capacity, "execute failed (error " + code(status) + ")");
    return -1;
  }
  return static_cast<int>(session->method->outputs_size());
}

// Output `index` of the last run: writes up to 8 sizes and returns the rank; copies the values as float32
// into `values` when it is not null (capacity in elements). Returns -1 for an output that is not a
// float32/float16 tensor or a buffer too small.
int pte_output(void* handle, int index, int64_t* sizes, float* values, int64_t capacity) {
  auto* session = static_cast<Session*>(handle);
  const et::EValue& value = session->method->get_output(static_cast<size_t>(index));
  if (!value.isTensor()) return -1;
  const Tensor& out = value.toTensor();
  for (ssize_t i = 0; i < out.dim() && i < 8; ++i) sizes[i] = out.size(i);
  if (values != nullptr) {
    if (out.numel() > capacity) return -1;
    if (out.scalar_type() == ScalarType::Float) {
      std::memcpy(values, out.const_data_ptr<float>(), sizeof(float) * out.numel());
    } else if (out.scalar_type() == ScalarType::Half) {
      const auto* half = out.const_data_ptr<executorch::aten::Half>();
      for (ssize_t i = 0; i < out.numel(); ++i) values[i] = static_cast<float>(half[i]);
    } else {
      return -1;
    }
  }
  return static_cast<int>(out.dim());
}

void pte_free(void* handle) { delete static_cast<Session*>(handle); }

// Size XNNPACK's threadpool (process-wide in ExecuTorch); n < 1 leaves it as it is.
void pte_set_threads(int n) {
  if (n > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(n);
}

}  // extern "C"
