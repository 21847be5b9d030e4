// pte_runner: times an ExecuTorch program's "forward" and prints what ExecuTorch's
// executor_runner prints, so one parser reads both:
//
//   Model loaded in X ms.
//   Iteration I of N: X ms
//   Model executed successfully N time(s) in X ms.
//
// and, before them, one line per input (which executor_runner does not print):
//
//   Input 0: float32 [1, 3, 224, 224]
//
// Flags follow executor_runner: --model_path PATH, --num_executions N, --cpu_threads N
// (-1: the runtime's own choice). Every input tensor gets the shape and dtype the program
// declares, filled with a fixed pattern; inputs of other kinds are refused. Exit codes:
// 0 success, 1 a runtime failure, 2 a bad command line.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/core/exec_aten/util/scalar_type_util.h>
#include <executorch/runtime/platform/runtime.h>
#ifdef ET_USE_THREADPOOL
#if __has_include(<executorch/extension/threadpool/threadpool.h>)
#include <executorch/extension/threadpool/threadpool.h>
#else
// The pip wheel ships libexecutorch_threadpool.so without this header; these two declarations
// match the library's exported symbols.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
#endif
#endif

using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::EValue;
using executorch::runtime::Error;
using executorch::runtime::Tag;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

const char* dtype_name(executorch::aten::ScalarType type) {
  using executorch::aten::ScalarType;
  switch (type) {
    case ScalarType::Float: return "float32";
    case ScalarType::Half: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
    case ScalarType::Double: return "float64";
    case ScalarType::Byte: return "uint8";
    case ScalarType::Char: return "int8";
    case ScalarType::Short: return "int16";
    case ScalarType::Int: return "int32";
    case ScalarType::Long: return "int64";
    case ScalarType::Bool: return "bool";
    default: return "other";
  }
}

int usage(const char* message) {
  std::fprintf(stderr, "pte_runner: %s\nusage: pte_runner --model_path FILE.pte [--num_executions N] "
               "[--cpu_threads N]\n", message);
  return 2;
}

bool parse_int(const char* text, long* out) {
  char* end = nullptr;
  *out = std::strtol(text, &end, 10);
  return end != text && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path;
  long executions = 1;
  long threads = -1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return usage(("missing value for " + arg).c_str());
    }
    if (arg == "--model_path") {
      model_path = value;
    } else if (arg == "--num_executions") {
      if (!parse_int(value.c_str(), &executions) || executions < 1) return usage("--num_executions must be >= 1");
    } else if (arg == "--cpu_threads") {
      if (!parse_int(value.c_str(), &threads) || threads == 0 || threads < -1)
        return usage("--cpu_threads must be -1 or >= 1");
    } else {
      return usage(("unknown flag " + arg).c_str());
    }
  }
  if (model_path.empty()) return usage("--model_path is required");

  executorch::runtime::runtime_init();
#ifdef ET_USE_THREADPOOL
  if (threads > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(threads);
#endif

  Clock::time_point start = Clock::now();
  Module module(model_path, Module::LoadMode::File);
  Error status = module.load_forward();
  if (status != Error::Ok) {
    std::fprintf(stderr, "pte_runner: cannot load %s (error 0x%x)\n", model_path.c_str(),
                 static_cast<unsigned>(status));
    return 1;
  }
  auto meta = module.method_meta("forward");
  if (!meta.ok()) {
    std::fprintf(stderr, "pte_runner: %s has no forward method\n", model_path.c_str());
    return 1;
  }
  std::printf("Model loaded in %f ms.\n", ms_since(start));

  std::vector<TensorPtr> tensors;
  std::vector<EValue> inputs;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto tag = meta->input_tag(i);
    if (!tag.ok() || *tag != Tag::Tensor) {
      std::fprintf(stderr, "pte_runner: input %zu is not a tensor; this runner feeds tensors only\n", i);
      return 1;
    }
    auto info = meta->input_tensor_meta(i);
    std::vector<executorch::aten::SizesType> sizes(info->sizes().begin(), info->sizes().end());
    std::string shape;
    for (size_t d = 0; d < sizes.size(); ++d) shape += (d ? ", " : "") + std::to_string(sizes[d]);
    std::printf("Input %zu: %s [%s]\n", i, dtype_name(info->scalar_type()), shape.c_str());
    std::vector<uint8_t> bytes(info->nbytes());
    for (size_t b = 0; b < bytes.size(); ++b) bytes[b] = static_cast<uint8_t>((b * 7 + 3) % 61);
    if (info->scalar_type() == executorch::aten::ScalarType::Float) {  // small finite values, not byte noise
      float* values = reinterpret_cast<float*>(bytes.data());
      for (size_t k = 0; k < bytes.size() / sizeof(float); ++k) values[k] = static_cast<float>((k % 61) - 30) / 30.f;
    }
    tensors.push_back(executorch::extension::make_tensor_ptr(sizes, std::move(bytes), {}, {}, info->scalar_type()));
    inputs.emplace_back(tensors.back());
  }

  double total = 0;
  for (long i = 1; i <= executions; ++i) {
    Clock::time_point t0 = Clock::now();
    auto result = module.execute("forward", inputs);
    double elapsed = ms_since(t0);
    if (!result.ok()) {
      std::fprintf(stderr, "pte_runner: execution %ld failed (error 0x%x)\n", i,
                   static_cast<unsigned>(result.error()));
      return 1;
    }
    total += elapsed;
    std::printf("Iteration %ld of %ld: %f ms\n", i, executions, elapsed);
  }
  std::printf("Model executed successfully %ld time(s) in %f ms.\n", executions, total);
  return 0;
}
