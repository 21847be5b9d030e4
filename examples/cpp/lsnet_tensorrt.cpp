// lsnet_tensorrt.cpp - classify a picture with an LSNet TensorRT engine made by lsnet-export.
//
// Documented snippet (TensorRT is not installed where lsnet-deploy is tested; lsnet_preprocess.hpp is,
// and matches the Python preprocessing bit for bit). Engines carry no metadata, so lsnet-export writes it
// beside the engine: lsnet_t.engine.json = {"metadata": {"input_size": "[224, 224]", "mean": "[...]",
// ...}, "input": {...}, ...}; each metadata value is a JSON document in a string, decoded twice below.
//
// Build (TensorRT 10, CUDA 12, nlohmann/json, stb_image):
//   g++ -std=c++17 -O2 lsnet_tensorrt.cpp -I/usr/local/cuda/include -L/usr/local/cuda/lib64 \
//       -lnvinfer -lcudart -o lsnet_tensorrt
//   ./lsnet_tensorrt lsnet_t.engine cat.jpg
//
// Or skip the decode and hand lsnet::preprocess() the RGB pixels your app already has (camera frames:
// convert YUV/BGR to RGB first; OpenCV's imread gives BGR).

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#define STB_IMAGE_IMPLEMENTATION
#include "stb_image.h"  // ignores EXIF orientation: rotate phone photos yourself

#include "lsnet_preprocess.hpp"

using json = nlohmann::json;

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
    }
};

#define CHECK_CUDA(call)                                                                       \
    do {                                                                                       \
        cudaError_t status = (call);                                                           \
        if (status != cudaSuccess) throw std::runtime_error(cudaGetErrorString(status));       \
    } while (0)

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The recipe and labels from "<engine>.json": metadata values are JSON documents stored as strings.
struct Metadata {
    lsnet::Recipe recipe;
    std::vector<std::string> labels;
    std::string input_name = "input", output_name = "logits";
};

Metadata read_metadata(const std::string& engine_path) {
    const std::string sidecar = engine_path + ".json";
    const std::vector<char> text = read_file(sidecar);
    const json meta = json::parse(text.begin(), text.end()).at("metadata");
    auto field = [&](const char* key) { return json::parse(meta.at(key).get<std::string>()); };
    Metadata m;
    const json size = field("input_size");  // [H, W]
    m.recipe.height = size.at(0).get<int>();
    m.recipe.width = size.at(1).get<int>();
    for (int c = 0; c < 3; ++c) {
        m.recipe.mean[c] = field("mean").at(c).get<float>();
        m.recipe.std[c] = field("std").at(c).get<float>();
    }
    m.recipe.crop_pct = field("crop_pct").get<double>();
    m.recipe.interpolation = field("interpolation").get<std::string>();
    if (meta.contains("labels")) m.labels = field("labels").get<std::vector<std::string>>();
    if (meta.contains("input_name")) m.input_name = field("input_name").get<std::string>();  // JSON, like every value
    if (meta.contains("output_name")) m.output_name = field("output_name").get<std::string>();
    return m;
}

lsnet::RgbImage load_rgb(const std::string& path) {
    int w = 0, h = 0, channels = 0;
    unsigned char* data = stbi_load(path.c_str(), &w, &h, &channels, 3);  // force RGB
    if (!data) throw std::runtime_error(path + ": not a readable image (" + stbi_failure_reason() + ")");
    lsnet::RgbImage image{w, h, std::vector<uint8_t>(data, data + static_cast<size_t>(w) * h * 3)};
    stbi_image_free(data);
    return image;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " ENGINE IMAGE\n";
        return 2;
    }
    try {
        const std::string engine_path = argv[1];
        const Metadata meta = read_metadata(engine_path);
        const std::vector<float> input = lsnet::preprocess(load_rgb(argv[2]), meta.recipe);  // (3, H, W)

        Logger logger;
        std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
        const std::vector<char> blob = read_file(engine_path);
        std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(blob.data(), blob.size())};
        if (!engine) throw std::runtime_error("cannot deserialize " + engine_path + " (built for another GPU or TensorRT?)");
        std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};

        // batch 1; a --dynamic engine needs the shape set, a fixed one accepts the same call
        const nvinfer1::Dims4 shape{1, 3, meta.recipe.height, meta.recipe.width};
        if (!context->setInputShape(meta.input_name.c_str(), shape)) throw std::runtime_error("input shape rejected");
        const nvinfer1::Dims out_dims = context->getTensorShape(meta.output_name.c_str());
        const int64_t classes = out_dims.d[out_dims.nbDims - 1];

        void* d_input = nullptr;
        void* d_output = nullptr;
        CHECK_CUDA(cudaMalloc(&d_input, input.size() * sizeof(float)));
        CHECK_CUDA(cudaMalloc(&d_output, classes * sizeof(float)));
        cudaStream_t stream;
        CHECK_CUDA(cudaStreamCreate(&stream));
        CHECK_CUDA(cudaMemcpyAsync(d_input, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
        context->setTensorAddress(meta.input_name.c_str(), d_input);  // inputs and outputs stay float32
        context->setTensorAddress(meta.output_name.c_str(), d_output);
        if (!context->enqueueV3(stream)) throw std::runtime_error("inference failed");
        std::vector<float> logits(classes);
        CHECK_CUDA(cudaMemcpyAsync(logits.data(), d_output, classes * sizeof(float), cudaMemcpyDeviceToHost, stream));
        CHECK_CUDA(cudaStreamSynchronize(stream));
        cudaStreamDestroy(stream);
        cudaFree(d_input);
        cudaFree(d_output);

        // softmax and top-5, as lsnet-predict prints them
        const float top = *std::max_element(logits.begin(), logits.end());
        std::vector<double> probs(classes);
        double total = 0.0;
        for (int64_t i = 0; i < classes; ++i) total += probs[i] = std::exp(static_cast<double>(logits[i]) - top);
        std::vector<int64_t> order(classes);
        std::iota(order.begin(), order.end(), 0);
        const int64_t k = std::min<int64_t>(5, classes);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int64_t a, int64_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
        for (int64_t r = 0; r < k; ++r) {
            const int64_t i = order[r];
            std::cout << r + 1 << "  " << probs[i] / total << "  " << i << "  "
                      << (meta.labels.empty() ? "" : meta.labels[i]) << "\n";
        }
    } catch (const std::exception& error) {
        std::cerr << "error: " << error.what() << "\n";
        return 1;
    }
    return 0;
}
